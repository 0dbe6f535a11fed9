"""A real ``hf-edge serve`` process on 127.0.0.1 for live tests (port chosen by the OS).

``serve_bundle`` starts it in a subprocess with its output in a log file, waits for uvicorn's
"running on" line and a 200 from ``/readyz`` (start-up bound 120 s, not a performance
assertion), yields ``(proc, base_url)`` and stops the process on exit.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest

SERVE = [sys.executable, "-c",
         "import sys; from hackforge_edge.cli import main; sys.exit(main(sys.argv[1:]))", "serve"]


@contextmanager
def serve_bundle(bundle: Path, log_path: Path, options: Sequence[str],
                 env: Mapping[str, str] | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """``hf-edge serve BUNDLE --host 127.0.0.1 --port 0 OPTIONS``; yields (process, base URL).

    The server's environment is this one without any ``HF_EDGE_*`` variable, plus ``env``.
    """
    import httpx

    server_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_EDGE_")}
    server_env.update(env or {})
    cmd = [*SERVE, str(bundle), "--host", "127.0.0.1", "--port", "0", *options]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=server_env)
    try:
        base = None
        deadline = time.monotonic() + 120  # start-up bound, not a performance assertion
        while time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log_path.read_text(errors="replace"))
            if m:
                base = m.group(1)
                try:
                    if httpx.get(base + "/readyz", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
        else:
            pytest.fail("server did not become ready:\n" + log_path.read_text(errors="replace")[-3000:])
        yield proc, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
