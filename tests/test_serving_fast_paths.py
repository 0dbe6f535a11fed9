"""The cheaper request paths: a raw image body, the binary tensor endpoint, and JPEGs decoded
at a reduced scale in the DCT domain (checked against the exact training path)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from test_serving import LABELS, PRE, _client, err, png_bytes, reference_probs  # noqa: F401

from hackforge_edge.data import synthetic
from hackforge_edge.serving.inputs import images_to_batch
from hackforge_edge.serving.settings import load_settings


def jpeg_bytes(size: int, seed: int) -> bytes:
    """A synthetic histology tile rendered at ``size`` px and saved as a JPEG (quality 90)."""
    from PIL import Image

    img, _ = synthetic.generate(1, image_size=size, domain="target", seed=seed)
    buf = io.BytesIO()
    Image.fromarray(img[0]).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from test_serving import make_image_bundle

    bundle = make_image_bundle(tmp_path_factory.mktemp("fast") / "tiny-cnn")
    app, tc = _client(bundle, max_batch=4, warmup_runs=1)
    with tc:
        assert app.state.host.ready.wait(60)
        yield tc, bundle


def test_raw_image_body_equals_multipart(client):
    tc, bundle = client
    img = png_bytes(seed=3)
    r_raw = tc.post("/v1/predict", content=img, headers={"content-type": "image/png"})
    r_mp = tc.post("/v1/predict", files={"file": ("x.png", img, "image/png")})
    assert r_raw.status_code == r_mp.status_code == 200, r_raw.text
    ref = reference_probs(bundle / "model.onnx", [img])[0]
    for r in (r_raw, r_mp):
        (pred,) = r.json()["predictions"]
        np.testing.assert_allclose([pred["probabilities"][k] for k in LABELS], ref, rtol=1e-5, atol=1e-6)


def test_binary_tensor_endpoint_matches_json_tensor(client):
    import onnxruntime as ort

    tc, bundle = client
    x = np.random.default_rng(7).normal(size=(3, 3, 32, 32)).astype(np.float32)
    logits = ort.InferenceSession(str(bundle / "model.onnx")).run(None, {"input": x})[0]
    r = tc.post("/v1/predict", content=x.tobytes(),
                headers={"content-type": "application/octet-stream", "x-tensor-shape": "3,3,32,32",
                         "x-tensor-dtype": "float32"})
    assert r.status_code == 200, r.text
    got = np.array([[p["probabilities"][k] for k in LABELS] for p in r.json()["predictions"]])
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_binary_tensor_bad_input_is_4xx_and_server_keeps_serving(client):
    tc, _ = client
    x = np.zeros((1, 3, 32, 32), np.float32)
    h = {"content-type": "application/octet-stream"}
    err(tc.post("/v1/predict", content=x.tobytes(), headers=h), 422, "shape_mismatch")  # no shape header
    err(tc.post("/v1/predict", content=x.tobytes()[:-4], headers={**h, "x-tensor-shape": "1,3,32,32"}),
        422, "shape_mismatch")
    err(tc.post("/v1/predict", content=x.tobytes(), headers={**h, "x-tensor-shape": "1,3,a,32"}),
        422, "shape_mismatch")
    err(tc.post("/v1/predict", content=x.astype(np.float64).tobytes(),
                headers={**h, "x-tensor-shape": "1,3,32,32", "x-tensor-dtype": "float64"}), 422, "dtype_mismatch")
    err(tc.post("/v1/predict", content=x.tobytes(), headers={**h, "x-tensor-shape": "1,3,32,32",
                                                              "x-tensor-dtype": "bogus"}), 422, "dtype_mismatch")
    err(tc.post("/v1/predict", content=x.reshape(1, 3, 16, 64).tobytes(),
                headers={**h, "x-tensor-shape": "1,3,16,64"}), 422, "shape_mismatch")
    err(tc.post("/v1/predict", content=np.full((1, 3, 32, 32), np.nan, np.float32).tobytes(),
                headers={**h, "x-tensor-shape": "1,3,32,32"}), 422, "nan_not_allowed")
    err(tc.post("/v1/predict", content=np.zeros((5, 3, 32, 32), np.float32).tobytes(),
                headers={**h, "x-tensor-shape": "5,3,32,32"}), 413, "batch_too_large")
    err(tc.post("/v1/predict", content=x.tobytes(), headers={**h, "x-tensor-shape": "1,3,32,32",
                                                              "x-tensor-name": "nope"}), 422, "invalid_inputs")
    ok = tc.post("/v1/predict", content=x.tobytes(), headers={**h, "x-tensor-shape": "1,3,32,32"})
    assert ok.status_code == 200, ok.text


def test_dct_scaled_jpeg_decode_keeps_the_class_and_stays_close():
    """A 256 px JPEG for a 32 px model is decoded at 1/4 scale (64 px, twice the input) before
    the training resize. The tensor differs a little from the full decode (reported, bounded loosely here);
    the exact path (fast_jpeg=0) equals the training preprocessing to 1e-5."""
    from PIL import Image

    blobs = [jpeg_bytes(256, seed) for seed in range(6)]
    fast = images_to_batch(blobs, PRE, load_settings({"fast_jpeg": 1}, environ={}))
    exact = images_to_batch(blobs, PRE, load_settings({"fast_jpeg": 0}, environ={}))
    train = np.stack([PRE.pil_to_chw(Image.open(io.BytesIO(b))) for b in blobs])
    np.testing.assert_allclose(exact, train, atol=1e-5)
    diff = np.abs(fast - exact)
    assert 0 < diff.max() < 1.0          # normalised units (pixel / 255 / std): a visible change
    assert diff.mean() < 0.1              # ~4 grey levels on average at 8x reduction (README numbers)
    # a PNG (no DCT) and a JPEG under four times the input side take the exact path (decoding a
    # 2x JPEG straight to the input size changed predicted classes: benchmarks/jpeg_fast_decode.py)
    small = [jpeg_bytes(48, 0), jpeg_bytes(64, 1), jpeg_bytes(96, 2), png_bytes(w=256, h=256)]
    np.testing.assert_array_equal(images_to_batch(small, PRE, load_settings({"fast_jpeg": 1}, environ={})),
                                  images_to_batch(small, PRE, load_settings({"fast_jpeg": 0}, environ={})))


def test_dct_scaled_jpeg_predicted_class_unchanged(client):
    tc, bundle = client
    import onnxruntime as ort

    sess = ort.InferenceSession(str(bundle / "model.onnx"))
    blobs = [jpeg_bytes(256, seed) for seed in range(6)]
    exact = images_to_batch(blobs, PRE, load_settings({"fast_jpeg": 0}, environ={}))
    want = sess.run(None, {"input": exact})[0].argmax(1).tolist()
    got = []
    for b in blobs:
        r = tc.post("/v1/predict", content=b, headers={"content-type": "image/jpeg"})
        assert r.status_code == 200, r.text
        got.append(r.json()["predictions"][0]["index"])
    assert got == want


def test_micro_batching_joins_concurrent_requests_and_returns_each_its_rows(tmp_path):
    """With a 200 ms window, 6 concurrent single-image requests share runs; each response equals
    the unbatched answer for its own tensor."""
    import threading

    import onnxruntime as ort
    from test_serving import make_image_bundle

    bundle = make_image_bundle(tmp_path / "b")
    sess = ort.InferenceSession(str(bundle / "model.onnx"))
    xs = [np.random.default_rng(s).normal(size=(1, 3, 32, 32)).astype(np.float32) for s in range(6)]
    want = [sess.run(None, {"input": x})[0][0] for x in xs]
    app, tc = _client(bundle, warmup_runs=1, micro_batch_ms=200, micro_batch_max=8)
    got: dict[int, list[float]] = {}
    with tc:
        assert app.state.host.ready.wait(60)

        def post(i: int) -> None:
            r = tc.post("/v1/predict", content=xs[i].tobytes(),
                        headers={"content-type": "application/octet-stream", "x-tensor-shape": "1,3,32,32"})
            assert r.status_code == 200, r.text
            got[i] = [r.json()["predictions"][0]["probabilities"][k] for k in LABELS]

        threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen = tc.get("/v1/metadata").json()["micro_batching"]["batch_sizes_seen"]
    assert max(int(k) for k in seen) > 1, seen            # some requests really shared a run
    for i, logits in enumerate(want):
        e = np.exp(logits - logits.max())
        np.testing.assert_allclose(got[i], e / e.sum(), rtol=1e-5, atol=1e-6)
