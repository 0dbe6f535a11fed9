"""Serving a text bundle: a real ``hf-edge serve`` on 127.0.0.1 takes ``{"texts": [...]}``,
tokenizes with ``tokenizers`` only, answers what onnxruntime answers (1e-5), refuses bad input
with a 4xx JSON body and keeps serving. The bundle is a tiny config-built BERT with a
tokenizer trained here on the synthetic corpus: no download."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from live_server import serve_bundle

torch = pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

LABELS = ["routine", "soon", "urgent"]
MAX_LENGTH = 40


def make_text_bundle(out: Path) -> Path:
    from hackforge_edge.bundle import atomic_write_json
    from hackforge_edge.data.text_preprocess import TextPreprocess, train_wordpiece
    from hackforge_edge.data.text_synthetic import generate
    from hackforge_edge.export import export_onnx, validate_export
    from hackforge_edge.export.onnx_export import text_classifier_axes
    from hackforge_edge.models.text import create_text_model

    texts, _ = generate(200, domain="target", seed=0)
    pre = TextPreprocess(train_wordpiece(texts, 1500), max_length=MAX_LENGTH, origin={"kind": "trained"})
    model = create_text_model("tinybert", len(LABELS), "none", seed=4).eval()
    example = {k: torch.from_numpy(v) for k, v in pre.encode(texts[:2], pad_to=12).items()}
    out.mkdir(parents=True)
    # the legacy exporter is several times faster than dynamo on a tiny model; the graph is
    # checked against PyTorch at another batch size and sequence length right here
    export_onnx(model, example, out / "model.onnx", output_names=["logits"], exporter="legacy",
                dynamic_axes=text_classifier_axes(list(example)))
    assert validate_export(model, out / "model.onnx", pre.encode(texts[2:5]))["passed"]
    atomic_write_json(out / "labels.json", LABELS)
    atomic_write_json(out / "preprocess.json", pre.to_json())
    pre.save(out)
    from hackforge_edge.bundle import utc_now, write_manifest

    write_manifest(out, config={"model": "tinybert", "task": "text"}, seed=0, started_at=utc_now())
    return out


def reference(bundle: Path, text: str) -> np.ndarray:
    """onnxruntime on token ids made with the tokenizers library directly, one text, no padding."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tok.enable_truncation(MAX_LENGTH)
    ids = np.asarray([tok.encode(text).ids], dtype=np.int64)
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    z = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0].astype(np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_text_bundle(tmp_path_factory.mktemp("text") / "bundle")


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("log") / "server.log"
    options = ["--max-batch", "4", "--max-text-chars", "1500", "--warmup-runs", "1", "--intra-op-threads", "1"]
    with serve_bundle(bundle, log_path, options) as (_proc, base):
        with httpx.Client(base_url=base, timeout=60) as client:
            yield client


def test_served_text_predictions_equal_onnxruntime(server, bundle):
    from hackforge_edge.data.text_synthetic import generate

    texts = ["Knee pain for three months, stable.", "Dear Doctor, crushing chest pain and sweating.",
             " ".join(generate(2, domain="target", seed=9)[0])]  # > MAX_LENGTH tokens: truncated
    r = server.post("/v1/predict", json={"texts": texts})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["truncated"] for p in preds] == [False, False, True]
    assert preds[2]["tokens"] == MAX_LENGTH
    for text, pred in zip(texts, preds):
        ref = reference(bundle, text)
        got = np.array([pred["probabilities"][lab] for lab in LABELS])
        assert np.abs(got - ref).max() <= 1e-5
        assert pred["label"] == LABELS[int(ref.argmax())]
    meta = server.get("/v1/metadata").json()
    assert "texts" in meta["accepts"] and meta["text"]["max_length"] == MAX_LENGTH


def test_bad_text_requests_are_4xx_json_and_the_server_keeps_serving(server):
    post = lambda body: server.post("/v1/predict", json=body)  # noqa: E731
    cases = {
        "non-string": (post({"texts": ["fine", 7]}), 422, "invalid_text"),
        "empty list": (post({"texts": []}), 422, "invalid_payload"),
        "not a list": (post({"texts": "one string"}), 422, "invalid_payload"),
        "empty text": (post({"texts": ["  "]}), 422, "invalid_text"),
        "text over limit": (post({"texts": ["x" * 1501]}), 413, "text_too_long"),
        "batch over limit": (post({"texts": ["a note"] * 5}), 413, "batch_too_large"),
        "invalid json": (server.post("/v1/predict", content=b'{"texts": ["a",', headers={
            "content-type": "application/json"}), 400, "malformed_json"),
    }
    for name, (resp, status, code) in cases.items():
        assert resp.status_code == status, (name, resp.text)
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json()["error"]["code"] == code, (name, resp.json())
    r = post({"texts": ["Dear Doctor, crushing chest pain for one hour."]})
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] in LABELS


def test_text_serving_path_needs_no_torch_or_transformers(bundle):
    script = textwrap.dedent(f"""
        import sys, json
        for name in ("torch", "torchvision", "transformers", "peft", "onnxscript",
                     # nor what the CPU image drops (docker/Dockerfile.cpu)
                     "onnx", "sympy", "mpmath", "huggingface_hub", "hf_xet"):
            sys.modules[name] = None  # any import of them now raises ImportError
        from fastapi.testclient import TestClient
        from hackforge_edge.serving.app import create_app
        app = create_app({str(bundle)!r})
        with TestClient(app) as c:
            assert app.state.host.ready.wait(60)
            r = c.post("/v1/predict", json={{"texts": ["a routine knee review"]}})
        print(json.dumps({{"status": r.status_code, "body": r.json()}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_EDGE_")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and out["body"]["predictions"][0]["label"] in LABELS
