"""A real ``hf-edge serve`` process on 127.0.0.1 (free port), hit with bad inputs over TCP.

Each bad request must come back as a 4xx JSON error, and afterwards the same server must still
answer predictions equal to onnxruntime's on the training preprocessing of the same image.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from live_server import serve_bundle
from test_serving import LABELS, PRE, make_image_bundle  # one tiny bundle builder for both

from hackforge_edge.bundle import sha256_file

httpx = pytest.importorskip("httpx")

TOKEN = "live-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def png_bytes(w: int = 70, h: int = 50, seed: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def huge_png(side: int = 20000) -> bytes:
    """A valid 1-bit PNG of side x side pixels, deflated by hand: ~50 KB on the wire."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row * 1000) for _ in range(side // 1000)) + comp.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def reference_probs(onnx_path: Path, blob: bytes) -> np.ndarray:
    import onnxruntime as ort
    from PIL import Image

    x = PRE.pil_to_chw(Image.open(io.BytesIO(blob)))[None]
    logits = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0][0].astype(np.float64)
    e = np.exp(logits - logits.max())
    return e / e.sum()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``hf-edge serve`` in a subprocess on 127.0.0.1, port chosen by the OS (--port 0)."""
    tmp = tmp_path_factory.mktemp("live")
    bundle = make_image_bundle(tmp / "live-cnn")
    log_path = tmp / "server.log"
    options = ["--max-body-mb", "1", "--max-batch", "4", "--warmup-runs", "1", "--intra-op-threads", "1"]
    with serve_bundle(bundle, log_path, options, env={"HF_EDGE_API_KEY": TOKEN}) as (proc, base):
        with httpx.Client(base_url=base, timeout=60) as client:
            yield {"client": client, "proc": proc, "bundle": bundle, "log": log_path, "base": base}


def assert_error(resp, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()["error"]
    assert set(body) == {"code", "message"} and body["message"]
    return body


def test_bad_requests_are_4xx_json_and_the_server_keeps_serving(server):
    c: httpx.Client = server["client"]
    predict = "/v1/predict"
    zeros = np.zeros((1, 3, 32, 32)).tolist()
    cases = {
        "non-image bytes": (c.post(predict, headers=AUTH, files={"file": ("a.png", b"hello, not a png", "image/png")}), 422),
        "truncated png": (c.post(predict, headers=AUTH, files={"file": ("t.png", png_bytes(300, 300)[:4000], "image/png")}), 422),
        "20000x20000 png": (c.post(predict, headers=AUTH, files={"file": ("h.png", huge_png(), "image/png")}), 413),
        "wrong shape": (c.post(predict, headers=AUTH, json={"tensor": np.zeros((1, 3, 8, 8)).tolist()}), 422),
        "wrong dtype": (c.post(predict, headers=AUTH, json={"tensor": zeros, "dtype": "int64"}), 422),
        "strings in tensor": (c.post(predict, headers=AUTH, json={"tensor": [[["x"]]]}), 422),
        "NaN": (c.post(predict, headers={**AUTH, "content-type": "application/json"},
                       content=json.dumps({"tensor": zeros}).replace("0.0", "NaN", 1)), 422),
        "empty body": (c.post(predict, headers={**AUTH, "content-type": "application/json"}, content=b""), 400),
        "malformed json": (c.post(predict, headers={**AUTH, "content-type": "application/json"}, content=b'{"tensor": [1,'), 400),
        "body over limit": (c.post(predict, headers={**AUTH, "content-type": "application/json"},
                                   content=b"[" + b"0," * (700 * 1024) + b"0]"), 413),
        "batch over limit": (c.post(predict, headers=AUTH, json={"images": [base64.b64encode(png_bytes()).decode()] * 5}), 413),
        "missing token": (c.post(predict, files={"file": ("a.png", png_bytes(), "image/png")}), 401),
        "wrong token": (c.post(predict, headers={"Authorization": "Bearer nope"},
                               files={"file": ("a.png", png_bytes(), "image/png")}), 401),
        "unknown route": (c.get("/v2/whatever", headers=AUTH), 404),
    }
    codes = {}
    for name, (resp, status) in cases.items():
        codes[name] = assert_error(resp, status)["code"]
    assert codes["NaN"] == "nan_not_allowed" and codes["20000x20000 png"] == "image_too_large"
    assert codes["body over limit"] == "body_too_large" and codes["missing token"] == "unauthorized"

    # still alive, still correct
    assert server["proc"].poll() is None
    assert c.get("/healthz").json() == {"status": "ok"}
    for seed in range(3):
        img = png_bytes(40 + 13 * seed, 90 - 7 * seed, seed=seed)
        r = c.post(predict, headers=AUTH, files={"file": ("x.png", img, "image/png")})
        assert r.status_code == 200, r.text
        (pred,) = r.json()["predictions"]
        ref = reference_probs(server["bundle"] / "model.onnx", img)
        np.testing.assert_allclose([pred["probabilities"][k] for k in LABELS], ref, rtol=1e-5, atol=1e-6)
        assert pred["label"] == LABELS[int(ref.argmax())]
    assert "Traceback" not in server["log"].read_text(errors="replace")


def test_streamed_body_over_limit_is_cut_off(server):
    def chunks():  # chunked transfer: no Content-Length to check up front
        for _ in range(20):
            yield b" " * (128 * 1024)

    r = server["client"].post("/v1/predict", headers={**AUTH, "content-type": "application/json"}, content=chunks())
    assert assert_error(r, 413)["code"] == "body_too_large"
    assert server["client"].get("/readyz").status_code == 200


def test_metadata_and_metrics_over_tcp(server):
    c = server["client"]
    md = c.get("/v1/metadata", headers=AUTH).json()
    assert md["manifest"]["name"] == "live-cnn" and md["manifest"]["strategy"] == "finetune"
    assert md["manifest"]["sha256"] == md["model"]["sha256"] == sha256_file(server["bundle"] / "model.onnx")
    assert md["limits"]["max_body_bytes"] == 1024 * 1024 and md["limits"]["intra_op_threads"] == 1
    assert_error(c.get("/metrics"), 401)
    text = c.get("/metrics", headers=AUTH).text
    assert re.search(r'hf_edge_requests_total\{method="GET",route="/healthz",status="200"\} \d', text)
    assert "hf_edge_request_duration_seconds_bucket" in text


def test_event_loop_answers_health_while_predictions_run(server):
    """Concurrent predictions (threadpool) and health checks all complete, none fail."""
    from concurrent.futures import ThreadPoolExecutor

    base = server["base"]
    img = png_bytes()

    def one(i: int) -> int:
        with httpx.Client(base_url=base, timeout=60) as c:
            if i % 3 == 0:
                return c.get("/healthz").status_code
            return c.post("/v1/predict", headers=AUTH, files={"file": ("x.png", img, "image/png")}).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(one, range(30)))
    assert statuses == [200] * 30
