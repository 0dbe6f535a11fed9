"""Where cells run: local worker processes, or Ray tasks on an existing cluster.

Both call the same picklable cell function ``fn(spec_doc, cell_doc, sweep_root, threads) ->
record``; the function writes the cell's result file itself (into the sweep directory, which
on a cluster must be a shared filesystem) and returns the record, so the driver can report
progress. Threads: torch intra-op threads per cell, chosen so jobs x threads <= cores.
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

from hackforge_edge.errors import HFEdgeError, UsageError

CellFn = Callable[[dict, dict, str, int], dict]
OnDone = Callable[[dict], None]
EXECUTORS = ("local", "ray")


def available_cores() -> int:
    """CPU cores this process may run on (affinity mask, else os.cpu_count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class RunOptions:
    """How to run the cells (not part of the spec: none of it changes a result)."""

    jobs: int = 1
    threads: int | None = None  # per job; default cores // jobs
    executor: str = "local"
    ray_address: str | None = None  # auto | ray://HOST:PORT | None (a local Ray instance)
    retry_failed: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.jobs < 1:
            raise UsageError(f"--jobs must be >= 1, got {self.jobs}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {self.threads}")
        if self.executor == "local":
            cores = available_cores()
            if self.jobs > cores:
                raise UsageError(f"--jobs {self.jobs} is more than the {cores} cores here")
            if self.jobs * self.threads_per_job() > cores:
                raise UsageError(f"--jobs {self.jobs} x --threads {self.threads} exceeds the "
                                 f"{cores} cores here")
        elif self.ray_address is not None and self.ray_address != "auto" \
                and not self.ray_address.startswith("ray://"):
            raise UsageError(f"--ray-address must be auto or ray://HOST:PORT, got {self.ray_address!r}")

    def threads_per_job(self) -> int:
        if self.threads is not None:
            return self.threads
        return max(1, available_cores() // self.jobs) if self.executor == "local" else 1


# ---- local ------------------------------------------------------------------------------

def run_local(fn: CellFn, spec_doc: dict, cells: Sequence[dict], root: str, opts: RunOptions,
              on_done: OnDone) -> None:
    """Run ``cells`` with ``opts.jobs`` processes (in this process when jobs == 1)."""
    threads = opts.threads_per_job()
    if opts.jobs == 1:
        for cell in cells:
            on_done(fn(spec_doc, cell, root, threads))
        return
    import multiprocessing

    # spawn: a forked child would inherit torch's thread pool state (a known deadlock source)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=opts.jobs, mp_context=ctx) as pool:
        pending = {pool.submit(fn, spec_doc, cell, root, threads) for cell in cells}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    on_done(fut.result())
        except BaseException as exc:
            for fut in pending:
                fut.cancel()
            from concurrent.futures.process import BrokenProcessPool

            if isinstance(exc, BrokenProcessPool):
                raise HFEdgeError("a sweep worker process died (killed, or out of memory); "
                                  "finished cells are kept: re-run the same command to continue") from None
            raise


# ---- Ray --------------------------------------------------------------------------------

def connect_ray(address: str | None) -> Any:
    """Import Ray and join the cluster at ``address`` (or reuse an initialised one).

    Nothing is written before this succeeds; an unreachable address is a UsageError.
    """
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'hackforge-edge[distributed]'") from None
    if ray.is_initialized():
        return ray
    if address and address.startswith("ray://"):
        parsed = urlparse(address)
        host, port = parsed.hostname, parsed.port or 10001
        try:  # fail in seconds with a clear message, before Ray's client retries for a minute
            socket.create_connection((host, port), timeout=5).close()
        except OSError as exc:
            raise UsageError(f"--ray-address {address}: cannot reach {host}:{port} ({exc})") from None
    try:
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"--ray-address {address}: no Ray cluster there ({msg})") from None
    return ray


def run_ray(fn: CellFn, spec_doc: dict, cells: Sequence[dict], root: str, opts: RunOptions,
            on_done: OnDone, on_crash: Callable[[dict, BaseException], dict]) -> None:
    """Each cell a Ray task (``num_cpus`` = threads) writing its file and returning its record.

    A task whose worker dies (out of memory, a lost node) is retried once by Ray, then recorded
    as failed through ``on_crash(cell, error) -> record``.
    """
    ray = connect_ray(opts.ray_address)
    threads = opts.threads_per_job()
    remote = ray.remote(num_cpus=threads, max_retries=1)(fn)
    refs = {remote.remote(spec_doc, cell, root, threads): cell for cell in cells}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            try:
                record = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the task itself catches ordinary errors
                record = on_crash(refs[ref], exc)
            on_done(record)
