"""The one session factory and the one timing helper (hackforge_edge.runtime)."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hackforge_edge.errors import ExportError, ModelFileError, UsageError
from hackforge_edge.runtime.session import make_session, session_options
from hackforge_edge.runtime.timing import Timing, percentile, time_calls, time_interleaved


def test_percentile_is_linear_interpolation():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == 2.5                     # the median
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 4.0
    assert percentile(values, 90) == pytest.approx(3.7)      # 1 + 0.9 * 3 positions
    t = Timing((4.0, 1.0, 3.0, 2.0))
    assert t.summary()["p50"] == 2.5 and t.min_ms == 1.0 and t.mean_ms == 2.5
    with pytest.raises(ValueError):
        percentile([], 50)


def test_time_calls_counts_warmup_runs_and_budget():
    calls = []
    t = time_calls(lambda: calls.append(1), warmup=3, runs=7)
    assert len(calls) == 10 and t.runs == 7 and t.warmup == 3 and all(x >= 0 for x in t.times_ms)
    slow = time_calls(lambda: time.sleep(0.01), warmup=1, runs=100, max_seconds=0.05, min_runs=2)
    assert 2 <= slow.runs <= 6                               # capped by the budget, not 100
    after = []
    time_calls(lambda: None, warmup=0, runs=4, after_each=lambda: after.append(1))
    assert len(after) == 4
    with pytest.raises(UsageError):
        time_calls(lambda: None, runs=0)


def test_time_interleaved_rotates_the_order():
    order = []
    fns = [lambda i=i: order.append(i) for i in range(3)]
    timings = time_interleaved(fns, warmup=0, runs=3)
    assert [t.runs for t in timings] == [3, 3, 3]
    assert order == [0, 1, 2, 1, 2, 0, 2, 0, 1]


def _relu_model(path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "m",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), str(path))
    return path


def test_make_session_runs_and_fails_in_one_line(tmp_path):
    sess = make_session(_relu_model(tmp_path / "m.onnx"), threads=1, allow_spinning=False)
    out = sess.run(None, {"x": np.array([[-1, 2, -3, 4]], dtype=np.float32)})[0]
    assert out.tolist() == [[0, 2, 0, 4]]
    opts = session_options(threads=2, allow_spinning=False)
    assert opts.intra_op_num_threads == 2
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(ModelFileError, match="no such file"):
        make_session(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ExportError, match="could not load the model") as exc:
        make_session(bad, error=ExportError)
    assert "\n" not in str(exc.value)
    with pytest.raises(UsageError, match="not available"):
        make_session(tmp_path / "m.onnx", providers=["NoSuchExecutionProvider"])
    with pytest.raises(UsageError, match="optimization"):
        session_options(optimization="max")
