"""The online monitor (stops a run that stays below its baseline) and the pipeline pre-flight."""

from __future__ import annotations

import numpy as np
import pytest

from hackforge_edge.errors import DataError, UsageError
from hackforge_edge.gate.monitor import TransferMonitor


class _Rec:
    def __init__(self, acc):
        self.val_accuracy, self.val_loss = acc, None


def test_monitor_patience_warmup_and_energy_not_spent():
    mon = TransferMonitor(0.8, "probe", total_epochs=10, patience=2, warmup_epochs=1)
    stops = [mon.on_epoch_end(None, e, _Rec(a)) for e, a in enumerate([0.5, 0.7, 0.9, 0.7, 0.6], 1)]
    # epoch 1 is warm-up; 2 below (streak 1); 3 above resets; 4, 5 below -> stop after epoch 5
    assert stops == [False, False, False, False, True]
    assert mon.stop_epoch == 5 and mon.epochs_left == 5
    s = mon.summary(phase_energy_j=50.0, phase_kind="estimated")
    assert s["stopped"] and s["energy_not_spent"]["energy_j"] == pytest.approx(50.0)
    assert s["energy_not_spent"]["kind"] == "estimated"


def test_monitor_warn_only_records():
    mon = TransferMonitor(0.8, "probe", total_epochs=4, patience=1, warmup_epochs=0, enforce=False)
    assert mon.on_epoch_end(None, 1, _Rec(0.5)) is False
    assert mon.stop_epoch == 1 and mon.epochs_left == 0 and not mon.summary()["stopped"]


def test_training_loop_stops_on_monitor(tiny_splits):
    from hackforge_edge.models.registry import create_model
    from hackforge_edge.training.loop import train

    model = create_model("tinycnn", 2, "none", seed=0)
    mon = TransferMonitor(1.01, "unreachable", total_epochs=6, patience=2, warmup_epochs=1)
    res = train(model, tiny_splits, epochs=6, lr=1e-2, batch_size=8, seed=0, progress=False,
                hooks=[mon])
    assert len(res.history) == 3 and mon.epochs_left == 3


def test_preflight_writes_gate_json_and_manifest_entry(tiny_splits, tmp_path):
    import torch

    from hackforge_edge.gate.report import GateReport
    from hackforge_edge.models.registry import create_model
    from hackforge_edge.recipes.gate import preflight

    path = tmp_path / "start.pt"
    torch.save(create_model("tinycnn", 2, "none", seed=5).state_dict(), path)
    said = []
    pf = preflight(model="tinycnn", weights=str(path), splits=tiny_splits, image_size=32, seed=0,
                   mode="warn", epochs=3, say=said.append)
    assert pf is not None and pf.verdict in ("helps", "uncertain", "hurts") and said
    assert pf.monitor is not None and not pf.monitor.enforce
    entry = pf.finish(tmp_path, phases=[], say=said.append)
    assert entry["file"] == "gate.json" and entry["mode"] == "warn"
    assert GateReport.read(tmp_path).entry(str(path)).leep is not None  # the file has a head
    assert preflight(model="tinycnn", weights="none", splits=tiny_splits, image_size=32, seed=0,
                     mode="stop", epochs=3) is None
    assert preflight(model="tinycnn", weights=str(path), splits=tiny_splits, image_size=32, seed=0,
                     mode="off", epochs=3) is None


def test_image_checks_and_unknown_or_unavailable_starts():
    from hackforge_edge.gate.features import load_start
    from hackforge_edge.recipes.gate import check_images

    rgb = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(DataError, match="1 channel"):
        check_images(np.zeros((4, 32, 32), np.uint8), rgb)
    assert "resized from 64x64" in check_images(np.zeros((4, 64, 64, 3), np.uint8), rgb)[0]
    with pytest.raises(UsageError, match="unknown start"):
        load_start("imagnet", model="tinycnn", image_size=32)
    with pytest.raises(UsageError, match="no ImageNet weights"):
        load_start("imagenet", model="tinycnn", image_size=32)
