"""The HTTP server through FastAPI's TestClient, on real onnxruntime sessions of tiny models.

The image model is a 2-layer CNN exported from torch (legacy exporter, dynamic batch) into a
bundle whose manifest is written by ``bundle.write_manifest``; the text-like model (int64 input_ids + attention_mask) is built with
onnx.helper and served as a bare .onnx file.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from hackforge_edge.bundle import sha256_file, write_manifest
from hackforge_edge.data.preprocess import ImagePreprocess
from hackforge_edge.errors import HFEdgeError, ServingError

LABELS = ["benign", "malignant"]
PRE = ImagePreprocess(image_size=(32, 32))


# ------------------------------------------------------------------ model builders


def make_image_bundle(out: Path) -> Path:
    """A tiny CNN bundle: model.onnx (input [N,3,32,32] -> logits [N,2]) + sidecars."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, 32, 32),), str(out / "model.onnx"), dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    (out / "labels.json").write_text(json.dumps(LABELS))
    (out / "preprocess.json").write_text(json.dumps(PRE.to_json()))
    # the manifest last, by the pipeline's own writer: the bundle is complete and verifiable
    write_manifest(out, config={"model": "tiny_cnn", "strategy": "finetune"}, seed=0,
                   started_at="2025-01-01T00:00:00+00:00")
    return out


def make_text_onnx(path: Path, vocab: int = 10, dim: int = 4, classes: int = 3) -> Path:
    """input_ids, attention_mask int64 [batch, seq] -> logits float [batch, classes]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    emb = numpy_helper.from_array(rng.normal(size=(vocab, dim)).astype(np.float32), "emb")
    w = numpy_helper.from_array(rng.normal(size=(dim, classes)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["e"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "minus1"], ["m3"]),
        helper.make_node("Mul", ["e", "m3"], ["em"]),
        helper.make_node("ReduceSum", ["em", "axes"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "w"], ["logits"]),
    ]
    minus1 = numpy_helper.from_array(np.array([-1], np.int64), "minus1")
    graph = helper.make_graph(
        nodes, "text",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=[emb, w, axes, minus1])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def png_bytes(w: int = 80, h: int = 60, seed: int = 0) -> bytes:
    from PIL import Image

    rgb = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def reference_probs(onnx_path: Path, blobs: list[bytes]) -> np.ndarray:
    """What onnxruntime says on the training preprocessing of these images (softmax)."""
    import onnxruntime as ort
    from PIL import Image

    x = np.stack([PRE.pil_to_chw(Image.open(io.BytesIO(b))) for b in blobs])
    logits = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0].astype(np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_image_bundle(tmp_path_factory.mktemp("serve") / "tiny-cnn")


@pytest.fixture(scope="module")
def text_onnx(tmp_path_factory) -> Path:
    return make_text_onnx(tmp_path_factory.mktemp("text") / "text.onnx")


def _client(model, **settings):
    from fastapi.testclient import TestClient

    from hackforge_edge.serving.app import create_app
    from hackforge_edge.serving.settings import load_settings

    app = create_app(model, settings=load_settings(settings, environ={}))
    return app, TestClient(app)


@pytest.fixture(scope="module")
def client(bundle):
    app, tc = _client(bundle, max_batch=4, max_body_bytes=512 * 1024, warmup_runs=1)
    with tc:
        assert app.state.host.ready.wait(60)
        yield tc


@pytest.fixture(scope="module")
def text_client(text_onnx):
    app, tc = _client(text_onnx, warmup_runs=1)
    with tc:
        assert app.state.host.ready.wait(60)
        yield tc


def err(resp, status: int, code: str | None = None) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["message"] and "\n" not in body["message"]
    if code:
        assert body["code"] == code, body
    return body["message"]


# ------------------------------------------------------------------ settings and providers


def test_settings_precedence_flag_over_env_over_default():
    from hackforge_edge.serving.settings import MIB, load_settings

    env = {"HF_EDGE_MAX_BATCH": "7", "HF_EDGE_MAX_BODY_MB": "2", "HF_EDGE_API_KEY": "s3cret"}
    s = load_settings({"max_batch": 3, "max_image_side": None}, environ=env)
    assert (s.max_batch, s.max_body_bytes, s.max_image_side) == (3, 2 * MIB, 8192)
    assert s.auth_enabled and "s3cret" not in repr(s) and "api_key" not in s.public()


def test_settings_collect_every_problem():
    from hackforge_edge.serving.settings import load_settings

    with pytest.raises(ServingError, match="max_batch.*max_image_side"):
        load_settings({"max_batch": 0, "max_image_side": -1}, environ={})
    with pytest.raises(ServingError, match="HF_EDGE_MAX_BATCH"):
        load_settings(environ={"HF_EDGE_MAX_BATCH": "many"})


def test_concurrent_runs_auto_rule():
    from hackforge_edge.serving.settings import ServeSettings

    assert ServeSettings().concurrent_runs(cpu_provider=True, cores=4) == 1  # ORT default: all cores per run
    assert ServeSettings(intra_op_threads=1).concurrent_runs(cpu_provider=True, cores=4) == 4
    assert ServeSettings(intra_op_threads=3).concurrent_runs(cpu_provider=True, cores=2) == 1
    assert ServeSettings(intra_op_threads=1).concurrent_runs(cpu_provider=False, cores=4) == 2
    assert ServeSettings(max_concurrent_runs=6).concurrent_runs(cpu_provider=True, cores=2) == 6


def test_providers_default_order_aliases_and_unknown():
    from hackforge_edge.serving.providers import resolve_providers

    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(None, avail) == avail
    assert resolve_providers(["cuda", "CPU", "cpu"], avail) == avail[1:]
    assert resolve_providers(None, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(ServingError, match="unknown execution provider 'npu'.*CPUExecutionProvider"):
        resolve_providers(["npu"], avail)
    with pytest.raises(ServingError, match="not available.*available here: CPUExecutionProvider"):
        resolve_providers(["tensorrt"], ["CPUExecutionProvider"])
    assert issubclass(ServingError, HFEdgeError)


def test_create_app_refuses_unknown_provider_and_missing_model(bundle, tmp_path):
    from hackforge_edge.serving.app import create_app

    with pytest.raises(ServingError, match="available here"):
        create_app(bundle, providers=["warp-drive"])
    with pytest.raises(HFEdgeError, match="no such file"):
        create_app(tmp_path / "nope.onnx")


def test_an_incomplete_or_changed_bundle_is_refused_unless_allowed(bundle, tmp_path, caplog):
    import shutil

    from hackforge_edge.errors import BundleError
    from hackforge_edge.serving.app import create_app

    changed = tmp_path / "changed"
    shutil.copytree(bundle, changed)
    data = bytearray((changed / "model.onnx").read_bytes())
    data[len(data) - 1] ^= 0x01  # one byte of the last initializer: still a loadable model
    (changed / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 differs from the manifest"):
        create_app(changed)
    incomplete = tmp_path / "incomplete"
    shutil.copytree(bundle, incomplete)
    (incomplete / "manifest.json").unlink()
    with pytest.raises(BundleError, match="incomplete bundle.*--allow-incomplete"):
        create_app(incomplete / "model.onnx")  # the file inside an interrupted run too
    with caplog.at_level("WARNING"):
        app = create_app(changed, allow_incomplete=True)  # served, but loudly and visibly
    assert "sha256 differs" in caplog.text
    assert app.state.host.manifest_summary()["verified"] is False


# ------------------------------------------------------------------ health, metadata


def test_readyz_is_503_before_startup_and_healthz_open(bundle):
    _app, tc = _client(bundle)  # not entered: no lifespan, no session yet
    assert tc.get("/healthz").json() == {"status": "ok"}
    err(tc.get("/readyz"), 503, "not_ready")
    err(tc.post("/v1/predict", json={"tensor": [[0.0]]}), 503, "not_ready")


def test_metadata_describes_model_bundle_and_providers(client, bundle):
    assert client.get("/readyz").json()["status"] == "ready"
    md = client.get("/v1/metadata").json()
    assert md["inputs"] == [{"name": "input", "shape": ["batch", 3, 32, 32], "dtype": "float32"}]
    assert md["outputs"][0]["name"] == "logits"
    assert md["labels"] == LABELS
    assert md["preprocessing"] == PRE.to_json()
    assert md["providers"]["in_use"] == ["CPUExecutionProvider"]
    sha = sha256_file(bundle / "model.onnx")
    finished = json.loads((bundle / "manifest.json").read_text())["finished_at"]
    assert md["manifest"] == {"name": "tiny-cnn", "model": "tiny_cnn", "strategy": "finetune",
                              "sha256": sha, "finished_at": finished, "present": True, "verified": True}
    assert md["model"]["version"] == f"tiny-cnn@{sha[:12]}"
    assert md["warmup"]["ok"] is True
    assert md["limits"]["max_batch"] == 4 and "api_key" not in md["limits"]
    assert md["limits"]["concurrent_runs_in_use"] >= 1


# ------------------------------------------------------------------ predictions


def test_multipart_image_matches_onnxruntime_on_training_preprocessing(client, bundle):
    img = png_bytes()
    r = client.post("/v1/predict", files={"file": ("x.png", img, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    ref = reference_probs(bundle / "model.onnx", [img])[0]
    (pred,) = body["predictions"]
    assert pred["index"] == int(ref.argmax()) and pred["label"] == LABELS[pred["index"]]
    np.testing.assert_allclose([pred["probabilities"][k] for k in LABELS], ref, rtol=1e-5, atol=1e-6)
    assert body["model"]["sha256"] == sha256_file(bundle / "model.onnx")[:12]
    lat = body["latency_ms"]
    assert lat["inference"] >= 0 and lat["queue"] >= 0 and lat["total"] >= lat["inference"] + lat["queue"]


def test_several_files_and_base64_batch_agree(client, bundle):
    imgs = [png_bytes(seed=s, w=40 + 10 * s) for s in range(3)]
    ref = reference_probs(bundle / "model.onnx", imgs)
    r1 = client.post("/v1/predict", files=[("files", (f"{i}.png", b, "image/png")) for i, b in enumerate(imgs)])
    r2 = client.post("/v1/predict", json={"images": [base64.b64encode(b).decode() for b in imgs]})
    for r in (r1, r2):
        assert r.status_code == 200, r.text
        got = np.array([[p["probabilities"][k] for k in LABELS] for p in r.json()["predictions"]])
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_json_tensor_forms(client, bundle):
    import onnxruntime as ort

    x = np.random.default_rng(1).normal(size=(2, 3, 32, 32)).astype(np.float32)
    logits = ort.InferenceSession(str(bundle / "model.onnx")).run(None, {"input": x})[0]
    r1 = client.post("/v1/predict", json={"inputs": {"input": x.tolist()}})
    r2 = client.post("/v1/predict", json={"tensor": x.tolist(), "dtype": "float32"})
    for r in (r1, r2):
        assert r.status_code == 200, r.text
        assert [p["index"] for p in r.json()["predictions"]] == logits.argmax(1).tolist()


def test_bare_onnx_multi_input_int64(text_client, text_onnx):
    import onnxruntime as ort

    md = text_client.get("/v1/metadata").json()
    assert md["labels"] == ["0", "1", "2"] and md["preprocessing"] is None
    assert [i["dtype"] for i in md["inputs"]] == ["int64", "int64"]
    ids = [[1, 2, 3, 0], [4, 5, 0, 0]]
    mask = [[1, 1, 1, 0], [1, 1, 0, 0]]
    r = text_client.post("/v1/predict", json={"inputs": {"input_ids": ids, "attention_mask": mask}})
    assert r.status_code == 200, r.text
    logits = ort.InferenceSession(str(text_onnx)).run(
        None, {"input_ids": np.array(ids), "attention_mask": np.array(mask)})[0]
    preds = r.json()["predictions"]
    assert [p["label"] for p in preds] == [str(i) for i in logits.argmax(1)]
    err(text_client.post("/v1/predict", json={"inputs": {"input_ids": [[1.5]], "attention_mask": [[1]]}}),
        422, "dtype_mismatch")
    err(text_client.post("/v1/predict", json={"inputs": {"input_ids": [[1, 2]], "attention_mask": [[1]]}}),
        422, "shape_mismatch")
    err(text_client.post("/v1/predict", json={"inputs": {"input_ids": [[1]]}}), 422, "invalid_inputs")
    err(text_client.post("/v1/predict", json={"tensor": [[1]]}), 422, "invalid_payload")
    # an index outside the embedding table passes validation and fails inside session.run
    err(text_client.post("/v1/predict", json={"inputs": {"input_ids": [[99]], "attention_mask": [[1]]}}),
        422, "inference_failed")
    err(text_client.post("/v1/predict", files={"file": ("x.png", png_bytes(), "image/png")}), 415)


# ------------------------------------------------------------------ refusals


def test_bad_tensors_are_4xx(client):
    good = np.zeros((1, 3, 32, 32)).tolist()
    err(client.post("/v1/predict", json={"tensor": np.zeros((1, 3, 16, 16)).tolist()}), 422, "shape_mismatch")
    err(client.post("/v1/predict", json={"tensor": [1, 2, 3]}), 422, "shape_mismatch")
    err(client.post("/v1/predict", json={"tensor": good, "dtype": "int64"}), 422, "dtype_mismatch")
    err(client.post("/v1/predict", json={"tensor": [[["a"]]]}), 422, "invalid_tensor")
    err(client.post("/v1/predict", json={"tensor": [[1, 2], [3]]}), 422, "invalid_tensor")
    nan = json.dumps({"tensor": good}).replace("0.0", "NaN", 1)
    assert "NaN not allowed" in err(client.post("/v1/predict", content=nan,
                                                headers={"content-type": "application/json"}),
                                    422, "nan_not_allowed")
    huge = json.dumps({"tensor": good}).replace("0.0", "1e999", 1)
    err(client.post("/v1/predict", content=huge, headers={"content-type": "application/json"}),
        422, "nan_not_allowed")
    err(client.post("/v1/predict", json={"tensor": np.zeros((5, 3, 32, 32)).tolist()}), 413, "batch_too_large")
    err(client.post("/v1/predict", json={"something": 1}), 422, "invalid_payload")
    err(client.post("/v1/predict", json=[1, 2]), 422, "invalid_payload")


def test_bad_bodies_and_routes_are_4xx_json(client):
    err(client.post("/v1/predict", content=b"", headers={"content-type": "application/json"}), 400, "empty_body")
    err(client.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"}),
        400, "malformed_json")
    err(client.post("/v1/predict", content=b"\x89PNG", headers={"content-type": "image/png"}), 422,
        "invalid_image")
    err(client.post("/v1/predict", content=b"hello", headers={"content-type": "text/plain"}), 415,
        "unsupported_media_type")
    err(client.post("/v1/predict", files={"file": ("x.bin", b"definitely not an image", "image/png")}),
        422, "invalid_image")
    err(client.post("/v1/predict", files={"file": ("x.png", png_bytes(200, 200)[:3000], "image/png")}),
        422, "invalid_image")
    err(client.post("/v1/predict", files={"other": ("x.png", png_bytes(), "image/png")}), 422, "invalid_payload")
    err(client.post("/v1/predict", json={"images": ["***"]}), 422, "invalid_base64")
    err(client.post("/v1/predict", json={"images": [base64.b64encode(png_bytes()).decode()] * 5}),
        413, "batch_too_large")
    err(client.get("/nope"), 404, "not_found")
    err(client.get("/v1/predict"), 405, "method_not_allowed")
    err(client.get("/v1/predict/"), 405, "method_not_allowed")


def test_predict_endpoint_refuses_a_broken_multipart_body_and_survives_a_crash(client, monkeypatch, caplog):
    # /v1/predict is answered by a pure ASGI endpoint outside FastAPI's router: its refusals
    # must still be the one JSON error shape, and an unexpected failure a logged 500
    broken = b"--b\r\nbad header\r\n\r\n"
    err(client.post("/v1/predict", content=broken,
                    headers={"content-type": "multipart/form-data; boundary=b"}), 400, "bad_request")
    err(client.post("/v1/predict", content=b"x", headers={"content-type": "multipart/form-data"}), 400,
        "bad_request")  # no boundary
    host = client.app.state.host

    def crash(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(host, "predict_images", crash)
    with caplog.at_level("ERROR", logger="hackforge_edge.serving"):
        assert "RuntimeError" in err(client.post("/v1/predict", files={"file": ("x.png", png_bytes(), "image/png")}),
                                     500, "internal")
    assert "unexpected error" in caplog.text and "boom" in caplog.text
    monkeypatch.undo()
    assert client.post("/v1/predict", files={"file": ("x.png", png_bytes(), "image/png")}).status_code == 200


def test_body_limit_on_content_length_and_on_a_chunked_stream(client):
    big = b"x" * (600 * 1024)
    err(client.post("/v1/predict", content=big, headers={"content-type": "application/json"}),
        413, "body_too_large")

    def chunks():  # no Content-Length: httpx sends it chunked
        for _ in range(10):
            yield b" " * (100 * 1024)

    err(client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"}),
        413, "body_too_large")
    assert client.get("/readyz").status_code == 200


def huge_png(side: int = 20000) -> bytes:
    """A valid 1-bit grayscale PNG of side x side pixels, compressed by hand (~50 KB)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * ((side + 7) // 8)  # filter byte + packed 1-bit pixels
    comp = zlib.compressobj(9)
    rows = 1000
    idat = b"".join(comp.compress(row * rows) for _ in range(side // rows)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_huge_image_header_is_refused_before_decoding(client):
    import struct

    data = huge_png()
    assert len(data) < 200_000 and struct.unpack(">II", data[16:24]) == (20000, 20000)
    err(client.post("/v1/predict", files={"file": ("big.png", data, "image/png")}), 413, "image_too_large")
    err(client.post("/v1/predict", json={"images": [base64.b64encode(huge_png(9000)).decode()]}),
        413, "image_too_large")  # under PIL's own bomb guard, over the server's 8192 px side limit


def test_metrics_count_requests_errors_and_inference(client):
    client.post("/v1/predict", files={"file": ("x.png", png_bytes(), "image/png")})
    client.get("/nope")
    text = client.get("/metrics").text
    assert 'hf_edge_requests_total{method="POST",route="/v1/predict",status="200"}' in text
    assert 'hf_edge_errors_total{route="other",status="404"}' in text
    assert "hf_edge_inference_duration_seconds_count" in text
    assert "hf_edge_model_ready 1.0" in text


def test_api_key_protects_everything_but_health(bundle):
    app, tc = _client(bundle, api_key="t0ken", warmup_runs=0)
    with tc:
        assert app.state.host.ready.wait(60)
        assert tc.get("/healthz").status_code == 200 and tc.get("/readyz").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic t0ken"}):
            r = tc.post("/v1/predict", files={"file": ("x.png", png_bytes(), "image/png")}, headers=headers)
            err(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer"
        err(tc.get("/metrics"), 401)
        err(tc.get("/v1/metadata"), 401)
        ok = {"Authorization": "Bearer t0ken"}
        assert tc.get("/v1/metadata", headers=ok).status_code == 200
        r = tc.post("/v1/predict", files={"file": ("x.png", png_bytes(), "image/png")}, headers=ok)
        assert r.status_code == 200, r.text


# ------------------------------------------------------------------ no torch on the serving path


def test_serving_path_works_with_torch_blocked(bundle):
    script = textwrap.dedent(f"""
        import sys, io, json
        for name in ("torch", "torchvision", "transformers", "peft", "onnxscript",
                     # nor what the CPU image drops (docker/Dockerfile.cpu)
                     "onnx", "sympy", "mpmath", "huggingface_hub", "hf_xet", "scipy"):
            sys.modules[name] = None  # any import of them now raises ImportError
        from fastapi.testclient import TestClient
        from hackforge_edge.serving.app import create_app
        from hackforge_edge.cli import serve_cmd  # the CLI module too
        app = create_app({str(bundle)!r})
        with TestClient(app) as c:
            assert app.state.host.ready.wait(60)
            r = c.post("/v1/predict", files={{"file": ("x.png", {png_bytes()!r}, "image/png")}})
        loaded = sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] == "torch")
        print(json.dumps({{"status": r.status_code, "body": r.json(), "torch": loaded}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_EDGE_")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and out["torch"] == []
    assert out["body"]["predictions"][0]["label"] in LABELS


# ------------------------------------------------------------------ CLI


def test_cli_serve_help_and_one_line_errors(bundle):
    from hackforge_edge.cli import main

    proc = subprocess.run([sys.executable, "-c", "import sys; from hackforge_edge.cli import main; "
                           "sys.exit(main(['serve', '--help']))"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--max-body-mb" in proc.stdout and "127.0.0.1" in proc.stdout
    assert main(["serve", str(bundle), "--providers", "warp-drive"]) == 2
    assert main(["serve", str(bundle / "missing.onnx")]) == 2


def test_serve_cli_refuses_an_unloadable_model_in_one_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    out = subprocess.run([sys.executable, "-m", "hackforge_edge", "serve", str(bad), "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and "could not load the model" in lines[0]
