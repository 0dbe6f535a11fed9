"""Training loop: determinism, best-val weights, evaluation, devices, interruption."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hackforge_edge.errors import UsageError  # noqa: E402
from hackforge_edge.models.registry import create_model  # noqa: E402
from hackforge_edge.strategies.registry import apply_strategy  # noqa: E402
from hackforge_edge.training.loop import evaluate, split_to_nchw, train  # noqa: E402


def _fit(splits, seed=0, **kw):
    torch.set_num_threads(1)
    model = create_model("tinycnn", 2, seed=seed)
    kw = {"epochs": 3, "lr": 1e-2, "batch_size": 8, "seed": seed, "progress": False, **kw}
    return model, train(model, splits, **kw)


def test_same_seed_same_history_and_weights(tiny_splits):
    m1, r1 = _fit(tiny_splits)
    m2, r2 = _fit(tiny_splits)
    assert [h.train_loss for h in r1.history] == [h.train_loss for h in r2.history]
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    _, r3 = _fit(tiny_splits, seed=1)
    assert [h.train_loss for h in r3.history] != [h.train_loss for h in r1.history]


def test_keeps_best_val_weights(tiny_splits):
    model, r = _fit(tiny_splits, epochs=4)
    accs = [h.val_accuracy for h in r.history]
    assert r.best_val_accuracy == max(accs) and accs[r.best_epoch - 1] == max(accs)
    held = evaluate(model, tiny_splits.val, preprocess=tiny_splits.preprocess)
    assert held["accuracy"] == pytest.approx(r.best_val_accuracy)
    assert r.duration_s > 0 and r.train_images == 24 and r.train_images_per_s > 0
    json.dumps(r.to_json(), allow_nan=False)


def test_evaluate_split_equals_arrays_and_is_strict_json(tiny_splits):
    model, _ = _fit(tiny_splits, epochs=1)
    s = tiny_splits
    a = evaluate(model, s.test, preprocess=s.preprocess, class_names=s.class_names)
    b = evaluate(model, (split_to_nchw(s.test, s.preprocess), s.test.labels), class_names=s.class_names)
    c = evaluate(model, (s.test.images, s.test.labels), preprocess=s.preprocess)
    assert a["confusion_matrix"] == b["confusion_matrix"] == c["confusion_matrix"]
    assert a["roc_auc"] == pytest.approx(b["roc_auc"])
    for key in ("accuracy", "f1", "sensitivity", "specificity", "roc_auc", "confusion_matrix"):
        assert key in a
    json.dumps(a, allow_nan=False)
    x = split_to_nchw(s.test, s.preprocess, limit=2)
    assert np.array_equal(x, s.preprocess.batch(list(s.test.images[:2])))


def test_single_class_test_split_metrics_are_null(tiny_splits):
    model, _ = _fit(tiny_splits, epochs=1)
    only_benign = tiny_splits.test.subset(np.flatnonzero(tiny_splits.test.labels == 0))
    m = evaluate(model, only_benign, preprocess=tiny_splits.preprocess)
    assert m["roc_auc"] is None and m["sensitivity"] is None
    json.dumps(m, allow_nan=False)


def test_lora_model_trains_with_progress_bars(tiny_splits):
    torch.set_num_threads(1)
    model, _ = apply_strategy(create_model("tinycnn", 2), "lora", lora_rank=2)
    r = train(model, tiny_splits, epochs=1, lr=1e-2, batch_size=12, seed=0, progress=True)
    assert len(r.history) == 1 and r.config["trainable_params"] > 0


def test_keyboard_interrupt_propagates(tiny_splits):
    class Stop:
        def on_epoch_start(self, model, epoch):
            if epoch == 2:
                raise KeyboardInterrupt

        def extra_loss(self, model):
            return None

    with pytest.raises(KeyboardInterrupt):
        _fit(tiny_splits, hooks=[Stop()])


def test_bad_arguments_are_usage_errors(tiny_splits):
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            _fit(tiny_splits, device="cuda")
    with pytest.raises(UsageError, match="--device"):
        _fit(tiny_splits, device="tpu")
    with pytest.raises(UsageError, match="--epochs"):
        _fit(tiny_splits, epochs=0)
    frozen = create_model("tinycnn", 2)
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(UsageError, match="no trainable"):
        train(frozen, tiny_splits, epochs=1, lr=1e-3, batch_size=8, seed=0, progress=False)
