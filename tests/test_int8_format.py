"""Engine-aware INT8 formats: U8S8 for onnxruntime on x86, S8S8 on ARM, symmetric for TensorRT."""

import pytest

from hackforge_edge.errors import ExportError
from hackforge_edge.export.int8_format import int8_settings, local_engine


def test_formats_per_engine():
    x86, arm, trt = (int8_settings(e) for e in ("ort-cpu-x86", "ort-cpu-arm", "tensorrt"))
    assert (x86["activation_type"], x86["weight_type"], x86["activation_symmetric"]) == ("QUInt8", "QInt8", False)
    assert (arm["activation_type"], arm["weight_type"]) == ("QInt8", "QInt8")
    assert trt["activation_symmetric"] and trt["weight_symmetric"] and trt["activation_type"] == "QInt8"
    assert all(s["per_channel"] and s["quant_format"] == "QDQ" and s["reason"] for s in (x86, arm, trt))
    assert int8_settings(None)["engine"] == local_engine()


def test_unknown_engine_fails_before_any_work(tmp_path):
    from hackforge_edge.export import make_int8

    with pytest.raises(ExportError, match="unknown INT8 target engine 'npu'"):
        make_int8(tmp_path / "missing.onnx", tmp_path / "q.onnx", [], engine="npu")
    assert not any(tmp_path.iterdir())
