"""Seeded training loop and target-domain evaluation.

Tensors are built with :class:`~hackforge_edge.data.preprocess.ImagePreprocess` (the serving
preprocessing) from uint8 images, so a server reproduces exactly what the model saw. Batches
come from a seeded numpy permutation per epoch rather than a torch DataLoader: the order is
deterministic, and worker processes would only compete for the 2 cores of a small box.

KeyboardInterrupt is never caught here: it propagates so the pipeline writes no manifest.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

import numpy as np

from hackforge_edge.data.preprocess import ImagePreprocess
from hackforge_edge.data.splits import DatasetSplits, Split
from hackforge_edge.errors import UsageError
from hackforge_edge.training.metrics import classification_metrics

if TYPE_CHECKING:
    import torch
    from torch import nn




class TrainHook(Protocol):
    """What a strategy that needs the loop (progressive unfreezing, EWC, L2-SP) can plug in.

    Required: ``on_epoch_start(model, epoch)`` (1-based epoch, before its first step; may flip
    requires_grad: the optimizer holds every parameter a hook's param groups name, and AdamW
    skips a parameter without a gradient) and ``extra_loss(model)`` (a term added to the task
    loss, e.g. a penalty, or None). Optional, looked up with getattr:
    ``param_groups(model, lr, weight_decay) -> list[dict] | None`` (AdamW param groups, each
    with its own ``lr``; the first hook returning groups wins) and
    ``make_scheduler(optimizer, total_steps) -> LRScheduler | None`` (replaces the cosine
    decay; stepped once per batch).
    """

    def on_epoch_start(self, model: "nn.Module", epoch: int) -> None: ...

    def extra_loss(self, model: "nn.Module") -> "torch.Tensor | None": ...

    # optional: ``on_epoch_end(model, epoch, record: EpochRecord) -> bool``; True stops training


def _first_from_hooks(hooks: Sequence[TrainHook], method: str, *args):
    for h in hooks:
        fn = getattr(h, method, None)
        out = fn(*args) if fn is not None else None
        if out is not None:
            return out
    return None


@dataclass(frozen=True)
class EpochRecord:
    """One epoch. Losses are mean cross-entropy (nats); accuracies are fractions in [0, 1]."""

    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float  # learning rate at the end of the epoch (the highest of the param groups)
    duration_s: float
    trainable_params: int | None = None  # parameters with requires_grad during this epoch
    # mean of the hooks' extra loss (a penalty) per step, and its ratio to the mean task loss:
    # below about 1e-3 a penalty is effectively off. None without an extra loss.
    penalty_loss: float | None = None
    penalty_to_task_loss: float | None = None


@dataclass
class TrainResult:
    """Outcome of :func:`train`. The model is left holding the best-val weights."""

    history: list[EpochRecord]
    duration_s: float  # wall-clock seconds for the whole loop, validation included
    best_epoch: int  # 1-based epoch whose weights the model holds
    best_val_accuracy: float | None
    device: str
    epochs: int
    train_images: int
    train_images_per_s: float  # training throughput (images seen / seconds in training steps)
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(device: str = "auto") -> "torch.device":
    """"auto" -> cuda if available else cpu; "cuda" without a GPU is a UsageError."""
    import torch

    d = str(device).lower()
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d == "cpu":
        return torch.device("cpu")
    if d.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine (use auto or cpu)")
        return torch.device(d)
    raise UsageError(f"--device must be auto, cpu or cuda, got {device!r}")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def augment_batch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flips and 90-degree rotations of square uint8 N x H x W x 3 tiles.

    Tissue has no canonical orientation, so these are label-preserving; they change no pixel
    value, so the serving preprocessing stays exact.
    """
    out = np.empty_like(images)
    for i, im in enumerate(images):
        im = np.rot90(im, k=int(rng.integers(4)))
        if rng.random() < 0.5:
            im = im[:, ::-1]
        out[i] = im
    return out


def iter_batches(split: Split, preprocess: ImagePreprocess, batch_size: int, *,
                 order: np.ndarray | None = None, rng: np.random.Generator | None = None
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (float32 B x 3 x H x W, int64 B) batches in ``order``; augment when ``rng`` given."""
    idx = np.arange(len(split)) if order is None else order
    for s in range(0, len(idx), batch_size):
        b = idx[s:s + batch_size]
        if hasattr(preprocess, "split_batch"):  # text (and later tabular): the task builds its feed
            yield preprocess.split_batch(split, b), split.labels[b]
            continue
        imgs = split.images[b]
        if rng is not None:
            imgs = augment_batch(imgs, rng)
        yield preprocess.batch(list(imgs)), split.labels[b]


def split_to_nchw(split: Split, preprocess: ImagePreprocess, limit: int | None = None) -> np.ndarray:
    """float32 N x 3 x H x W of the first ``limit`` images of ``split`` (serving preprocessing)."""
    return split.to_nchw(preprocess, limit)


def _to_device(x, dev):
    """numpy batch -> tensor on ``dev``; a name->array feed (text models) -> name->tensor."""
    import torch

    if isinstance(x, dict):
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(dev) for k, v in x.items()}
    return torch.from_numpy(np.ascontiguousarray(x)).to(dev)


def _forward(model, x):
    return model(**x) if isinstance(x, dict) else model(x)


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # stderr: stdout stays clean for machine-readable output of the CLI
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                    console=Console(stderr=True), disable=not enabled)


def _run_eval(model: "nn.Module", x_batches, device) -> tuple[np.ndarray, np.ndarray]:
    """(probs N x C, labels N) from an iterable of numpy (x, y) batches, in eval mode."""
    import torch

    was_training = model.training
    model.eval()
    probs, labels = [], []
    with torch.inference_mode():
        for x, y in x_batches:
            logits = _forward(model, _to_device(x, device))
            probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            labels.append(np.asarray(y))
    model.train(was_training)
    if not probs:
        return np.zeros((0, 0)), np.zeros(0, np.int64)
    return np.concatenate(probs), np.concatenate(labels)


def _loss_acc(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.log(p).mean()), float((probs.argmax(1) == labels).mean())


def train(model: "nn.Module", splits: DatasetSplits, *, epochs: int, lr: float, batch_size: int,
          seed: int, device: str = "auto", progress: bool = True, weight_decay: float = 0.01,
          augment: bool = True, validate: bool = True, hooks: Sequence[TrainHook] = (),
          progress_label: str = "train") -> TrainResult:
    """Train the parameters of ``model`` that require grad on ``splits.train``.

    AdamW (``lr`` per step, decoupled ``weight_decay``) with a cosine decay to zero over all
    steps; cross-entropy loss. With ``validate`` and a non-empty val split, accuracy on val is
    measured after every epoch and the model ends holding the weights of the best epoch (ties:
    lower val loss, then earlier); otherwise it holds the last epoch's. Deterministic for a
    given ``seed`` on CPU. ``progress``: a Rich bar on stderr, titled ``progress_label``.
    ``hooks``: see TrainHook.
    """
    import torch

    if int(epochs) < 1:
        raise UsageError(f"--epochs must be at least 1, got {epochs}")
    if int(batch_size) < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if not float(lr) > 0:
        raise UsageError(f"--lr must be positive, got {lr}")
    if len(splits.train) == 0:
        raise UsageError("the training split is empty")
    dev = resolve_device(device)
    seed_everything(seed)
    model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UsageError("the model has no trainable parameters (apply a strategy first)")
    epochs, batch_size = int(epochs), int(batch_size)
    steps_per_epoch = -(-len(splits.train) // batch_size)
    groups = _first_from_hooks(hooks, "param_groups", model, float(lr), float(weight_decay))
    opt = torch.optim.AdamW(groups if groups is not None else params, lr=float(lr),
                            weight_decay=float(weight_decay))
    sched = _first_from_hooks(hooks, "make_scheduler", opt, epochs * steps_per_epoch)
    schedule = "hook" if sched is not None else "cosine"
    if sched is None:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss()
    pre = splits.preprocess
    do_val = validate and len(splits.val) > 0

    history: list[EpochRecord] = []
    best: tuple | None = None  # (key, epoch, state)
    t_start = time.perf_counter()
    step_time = 0.0
    seen = 0
    with _progress(progress) as bar:
        task = bar.add_task(progress_label, total=epochs * steps_per_epoch, info="")
        for epoch in range(1, epochs + 1):
            t_epoch = time.perf_counter()
            for h in hooks:
                h.on_epoch_start(model, epoch)
            model.train()
            rng = np.random.default_rng([seed, epoch])
            order = rng.permutation(len(splits.train))
            tot_loss = tot_correct = n_seen = 0.0
            tot_extra, has_extra = 0.0, False
            trainable_now = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
            for x, y in iter_batches(splits.train, pre, batch_size, order=order,
                                     rng=rng if augment else None):
                t0 = time.perf_counter()
                # BatchNorm cannot train on one sample at 1x1 spatial size; drop such a tail batch
                if len(y) > 1 or steps_per_epoch == 1:
                    xb = _to_device(x, dev)
                    yb = torch.from_numpy(np.asarray(y, np.int64)).to(dev)
                    logits = _forward(model, xb)
                    task_loss = loss = loss_fn(logits, yb)
                    for h in hooks:
                        extra = h.extra_loss(model)
                        if extra is not None:
                            loss = loss + extra
                            tot_extra += float(extra.detach()) * len(y)
                            has_extra = True
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    tot_loss += float(task_loss.detach()) * len(y)
                    tot_correct += float((logits.detach().argmax(1) == yb).sum())
                    n_seen += len(y)
                sched.step()
                step_time += time.perf_counter() - t0
                bar.update(task, advance=1, description=f"{progress_label} epoch {epoch}/{epochs}",
                           info=f"loss {tot_loss / max(n_seen, 1):.3f}")
            seen += int(n_seen)
            val_loss = val_acc = None
            if do_val:
                probs, labels = _run_eval(model, iter_batches(splits.val, pre, max(batch_size, 64)), dev)
                val_loss, val_acc = _loss_acc(probs, labels)
                key = (val_acc, -val_loss)
                if best is None or key > best[0]:
                    best = (key, epoch, copy.deepcopy(model.state_dict()))
            mean_task = tot_loss / max(n_seen, 1)
            mean_extra = tot_extra / max(n_seen, 1) if has_extra else None
            rec = EpochRecord(epoch, mean_task, tot_correct / max(n_seen, 1),
                              val_loss, val_acc, float(max(sched.get_last_lr())),
                              time.perf_counter() - t_epoch, trainable_now, mean_extra,
                              None if mean_extra is None or mean_task <= 0 else mean_extra / mean_task)
            history.append(rec)
            if val_acc is not None:
                bar.update(task, info=f"loss {rec.train_loss:.3f} val acc {val_acc:.3f}")
            # a hook may stop the run early (gate.monitor.TransferMonitor); every hook sees the epoch
            stops = [h.on_epoch_end(model, epoch, rec) for h in hooks if hasattr(h, "on_epoch_end")]
            if any(stops):
                break
    if best is not None:
        model.load_state_dict(best[2])
        best_epoch, best_val = best[1], best[0][0]
    else:
        best_epoch, best_val = epochs, None
    model.eval()
    return TrainResult(
        history=history, duration_s=time.perf_counter() - t_start, best_epoch=best_epoch,
        best_val_accuracy=best_val, device=str(dev), epochs=epochs, train_images=len(splits.train),
        train_images_per_s=seen / step_time if step_time > 0 else 0.0,
        config={"optimizer": "AdamW", "lr": float(lr), "weight_decay": float(weight_decay),
                "schedule": schedule, "batch_size": batch_size, "epochs": epochs, "seed": seed,
                "augment": bool(augment), "validate": bool(do_val),
                "trainable_params": int(sum(p.numel() for p in params)),
                # each group's peak lr (OneCycleLR keeps it as max_lr, cosine as initial_lr)
                "param_groups": [{"name": g.get("group_name", str(i)),
                                  "peak_lr": g.get("max_lr", g.get("initial_lr", g["lr"])),
                                  "weight_decay": g["weight_decay"]}
                                 for i, g in enumerate(opt.param_groups)]},
    )


def predict_proba(model: "nn.Module", x: np.ndarray, *, batch_size: int = 64, device: str = "auto") -> np.ndarray:
    """Class probabilities (float N x C) for a float32 N x 3 x H x W batch."""
    dev = resolve_device(device)
    model.to(dev)
    batches = ((x[s:s + batch_size], np.zeros(len(x[s:s + batch_size]), np.int64))
               for s in range(0, len(x), batch_size))
    probs, _ = _run_eval(model, batches, dev)
    return probs


def evaluate(model: "nn.Module", data: Split | tuple[np.ndarray, np.ndarray], *,
             preprocess: ImagePreprocess | None = None, class_names: Sequence[str] | None = None,
             positive_class: int | None = None, batch_size: int = 64, device: str = "auto") -> dict[str, Any]:
    """Metrics of ``model`` on a Split (needs ``preprocess``) or on (float32 NCHW x, int labels).

    Returns :func:`hackforge_edge.training.metrics.classification_metrics` plus ``loss`` (mean
    cross-entropy, nats) and ``eval_duration_s``; undefined metrics are None, never NaN.
    """
    t0 = time.perf_counter()
    dev = resolve_device(device)
    model.to(dev)
    if isinstance(data, Split) or hasattr(preprocess, "split_batch"):  # text: a TextSplit
        if preprocess is None:
            raise UsageError("evaluate() on a Split needs the preprocess it was built with")
        probs, labels = _run_eval(model, iter_batches(data, preprocess, batch_size), dev)
    else:
        x, labels = data
        x = np.asarray(x)
        if x.dtype == np.uint8:  # N x H x W x 3 images: preprocess like a server would
            if preprocess is None:
                raise UsageError("evaluate() on uint8 images needs a preprocess")
            x = preprocess.batch(list(x))
        probs = predict_proba(model, x.astype(np.float32), batch_size=batch_size, device=device)
        labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        raise UsageError("cannot evaluate on an empty split")
    out = classification_metrics(labels, probs, class_names=class_names, positive_class=positive_class)
    out["loss"] = _loss_acc(probs, labels)[0]
    out["eval_duration_s"] = time.perf_counter() - t0
    return out
