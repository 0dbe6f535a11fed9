"""Online negative-transfer monitor: during training, compare target validation accuracy with
a baseline (a short scratch run, or a probe on frozen features) and stop a run that stays worse.

It is a training-loop hook (``training.loop.train(hooks=[monitor])``): the loop calls
``on_epoch_end`` after each epoch's validation and stops when it returns True. The energy a
stop saves is estimated from the epochs left at the run's own measured energy per epoch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class MonitorEvent:
    """One judged epoch. Accuracies are fractions; loss is mean cross-entropy (nats)."""

    epoch: int
    val_accuracy: float | None
    val_loss: float | None
    below_baseline: bool
    streak: int


@dataclass
class TransferMonitor:
    """Stop a run whose target val accuracy stays below ``baseline_accuracy`` - ``tolerance``
    for ``patience`` consecutive epochs after ``warmup_epochs``. With ``enforce`` False it only
    records when it would have stopped (``--gate warn``)."""

    baseline_accuracy: float
    baseline_name: str
    total_epochs: int
    patience: int = 2
    tolerance: float = 0.0
    warmup_epochs: int = 1
    enforce: bool = True
    events: list[MonitorEvent] = field(default_factory=list)
    stop_epoch: int | None = None  # epoch after which it stopped (or would have)

    @classmethod
    def from_thresholds(cls, baseline_accuracy: float, baseline_name: str, total_epochs: int,
                        *, enforce: bool, thresholds: dict[str, Any] | None = None) -> "TransferMonitor":
        if thresholds is None:
            from hackforge_edge.gate.decide import load_thresholds

            thresholds = load_thresholds()["monitor"]
        return cls(float(baseline_accuracy), baseline_name, int(total_epochs),
                   patience=int(thresholds["patience"]), tolerance=float(thresholds["tolerance"]),
                   warmup_epochs=int(thresholds["warmup_epochs"]), enforce=enforce)

    # TrainHook protocol
    def on_epoch_start(self, model, epoch: int) -> None:
        return None

    def extra_loss(self, model):
        return None

    def on_epoch_end(self, model, epoch: int, record) -> bool:
        """Judge the epoch just finished; True asks the loop to stop."""
        acc = getattr(record, "val_accuracy", None)
        below = (epoch > self.warmup_epochs and acc is not None
                 and acc < self.baseline_accuracy - self.tolerance)
        streak = (self.events[-1].streak + 1 if self.events and below else int(below))
        self.events.append(MonitorEvent(epoch, acc, getattr(record, "val_loss", None), below, streak))
        if streak >= self.patience and self.stop_epoch is None:
            self.stop_epoch = epoch
            return self.enforce
        return False

    @property
    def epochs_left(self) -> int:
        """Epochs not run because of the stop (0 when it did not stop or only warned)."""
        if self.stop_epoch is None or not self.enforce:
            return 0
        return max(0, self.total_epochs - self.stop_epoch)

    def summary(self, phase_energy_j: float | None = None, phase_kind: str | None = None) -> dict[str, Any]:
        """JSON-ready record. ``phase_energy_j``: energy (J) of the training phase that ran
        (metered); the energy not spent is estimated as that per epoch times the epochs left."""
        run = self.stop_epoch if (self.stop_epoch is not None and self.enforce) else self.total_epochs
        saved = None
        if phase_energy_j is not None and run:
            saved = {"energy_j": phase_energy_j / run * self.epochs_left, "kind": "estimated",
                     "method": f"({phase_kind or 'metered'} energy of the epochs run) / "
                               f"{run} epochs x {self.epochs_left} epochs left"}
        return {"baseline": {"accuracy": self.baseline_accuracy, "name": self.baseline_name},
                "patience": self.patience, "tolerance": self.tolerance,
                "warmup_epochs": self.warmup_epochs, "enforce": self.enforce,
                "stopped": self.stop_epoch is not None and self.enforce,
                "would_stop_epoch": self.stop_epoch, "epochs_planned": self.total_epochs,
                "epochs_left": self.epochs_left, "energy_not_spent": saved,
                "events": [asdict(e) for e in self.events]}
