"""Progressive unfreezing, EWC and L2-SP: each strategy's promise on a tiny model.

``PROMISE_TESTS`` maps every registered strategy to the test that checks its promise; the
registry test fails when a strategy is registered without one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hackforge_edge.errors import UsageError  # noqa: E402
from hackforge_edge.models.registry import MODELS, create_model, head_parameter_names  # noqa: E402
from hackforge_edge.strategies.ewc import EWCPenalty, empirical_fisher  # noqa: E402
from hackforge_edge.strategies.l2sp import L2SPPenalty  # noqa: E402
from hackforge_edge.strategies.layer_groups import layer_groups  # noqa: E402
from hackforge_edge.strategies.progressive import STLR_RATIO, ProgressiveUnfreezing  # noqa: E402
from hackforge_edge.strategies.registry import (  # noqa: E402
    STRATEGIES,
    StrategyOptions,
    apply_strategy,
    build_hooks,
)
from hackforge_edge.strategies.source_task import SourceTask, source_retention, source_task_problem  # noqa: E402
from hackforge_edge.training.loop import iter_batches, train  # noqa: E402

# strategy -> "module::test" that checks its promise (the first four: tests/test_strategies.py)
PROMISE_TESTS = {
    "scratch": "test_strategies::test_exactly_promised_parameters_change",
    "frozen": "test_strategies::test_exactly_promised_parameters_change",
    "finetune": "test_strategies::test_exactly_promised_parameters_change",
    "lora": "test_strategies::test_exactly_promised_parameters_change",
    "progressive": "test_transfer_strategies::test_progressive_top_k_groups_train_at_decayed_lrs",
    "ewc": "test_transfer_strategies::test_ewc_large_lambda_holds_high_fisher_parameters",
    "l2sp": "test_transfer_strategies::test_l2sp_large_alpha_holds_the_backbone",
}


def test_every_registered_strategy_has_a_promise_test():
    assert set(STRATEGIES) <= set(PROMISE_TESTS), f"no promise test for {set(STRATEGIES) - set(PROMISE_TESTS)}"
    import importlib

    here = str(Path(__file__).parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    for name in STRATEGIES:
        module, func = PROMISE_TESTS[name].split("::")
        assert callable(getattr(importlib.import_module(module), func, None)), PROMISE_TESTS[name]


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


class _Recorder:
    """Snapshots the parameters at each epoch start (after the strategy's own hook)."""

    def __init__(self):
        self.snaps = []

    def on_epoch_start(self, model, epoch):
        self.snaps.append(_snapshot(model))

    def extra_loss(self, model):
        return None


# --- progressive ---------------------------------------------------------------------------------

def test_progressive_top_k_groups_train_at_decayed_lrs(tiny_splits):
    torch.set_num_threads(1)
    model = create_model("tinycnn", 2, seed=0)
    opts = StrategyOptions(lr_decay=2.0, unfreeze_every=1)
    model, report = apply_strategy(model, "progressive", options=opts)
    groups = layer_groups(model)
    assert [g.name for g in groups] == ["features.0", "features.4", "head"]
    assert report.trainable_params == 34  # epoch 1 state: the head only
    hooks = build_hooks(model, "progressive", opts)
    rec = _Recorder()
    result = train(model, tiny_splits, epochs=3, lr=1e-2, batch_size=8, seed=0, progress=False,
                   validate=False, hooks=[*hooks, rec])
    rec.snaps.append(_snapshot(model))
    for k in (1, 2, 3):  # during epoch k exactly the top k groups changed
        changed = {n for n in rec.snaps[k - 1] if not torch.equal(rec.snaps[k - 1][n], rec.snaps[k][n])}
        expected = {n for g in groups[len(groups) - k:] for n in g.param_names}
        assert changed == expected, f"epoch {k}"
    lrs = [g["peak_lr"] for g in result.config["param_groups"]]
    assert lrs == pytest.approx([1e-2 / 4, 1e-2 / 2, 1e-2])  # eta_l = eta / decay^(L - l)
    assert [h.trainable_params for h in result.history] == [34, 1234, 1474]
    summary = hooks[0].summary()
    assert [e["unfrozen_groups"] for e in summary["epochs"]][:2] == [["head"], ["features.4", "head"]]


def test_progressive_unfreeze_every_and_slanted_triangular():
    model = create_model("tinycnn", 2)
    hook = ProgressiveUnfreezing.for_model(model, unfreeze_every=2, lr_decay=2.6, slanted_triangular=True)
    assert [hook.unfrozen_count(e) for e in range(1, 8)] == [1, 1, 2, 2, 3, 3, 3]
    opt = torch.optim.AdamW(hook.param_groups(model, 1e-3, 0.0), lr=1e-3)
    sched = hook.make_scheduler(opt, 100)
    lrs = []
    for _ in range(100):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    lrs = np.array(lrs)
    peak = np.array([1e-3 / 2.6 ** 2, 1e-3 / 2.6, 1e-3])
    assert lrs[0] == pytest.approx(peak / STLR_RATIO)  # starts at peak / ratio
    assert lrs.max(0) == pytest.approx(peak, rel=1e-2)  # reaches each group's peak
    assert int(lrs[:, 2].argmax()) in (9, 10)  # after 10 % of the steps
    final = np.array([g["lr"] for g in opt.param_groups])
    assert final == pytest.approx(peak / STLR_RATIO)  # decays back to peak / ratio
    assert np.allclose(np.diff(lrs[20:, 2]), np.diff(lrs[20:, 2])[0])  # linearly
    assert np.allclose(lrs[:, 2] / lrs[:, 1], 2.6)  # the decay holds all along


def test_layer_groups_partition_every_registered_model():
    for name in MODELS:
        model = create_model(name, 3)
        groups = layer_groups(model)
        names = [n for g in groups for n in g.param_names]
        assert sorted(names) == sorted(n for n, _ in model.named_parameters())
        assert groups[-1].name == "head" and len(groups) >= 3
    resnet = [g.name for g in layer_groups(create_model("resnet18", 2))]
    assert resnet == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_layer_groups_of_transformers_text_models(arch):
    transformers = pytest.importorskip("transformers")
    from torch import nn

    if arch == "bert":
        cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=32)
        backbone, layers = transformers.BertModel(cfg), "bert.encoder.layer"
    else:
        cfg = transformers.DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32)
        backbone, layers = transformers.DistilBertModel(cfg), "distilbert.transformer.layer"

    class TextClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            setattr(self, arch, backbone)
            self.head = nn.Linear(16, 2)

        def forward(self, ids):
            out = getattr(self, arch)(input_ids=ids)
            pooled = out.pooler_output if arch == "bert" else out.last_hidden_state[:, 0]
            return self.head(pooled)

    model = TextClassifier()
    model.hf_edge_meta = {"name": f"tiny-{arch}", "head": "head", "num_classes": 2}
    names = [g.name for g in layer_groups(model)]
    expected = ["embeddings", f"{layers}.0", f"{layers}.1"] + (["neck"] if arch == "bert" else []) + ["head"]
    assert names == expected  # bert's pooler is the neck
    hook = ProgressiveUnfreezing.for_model(model, lr_decay=2.6)
    assert hook.freeze_for_epoch(model, 2) == names[-2:]
    out = model(torch.randint(0, 50, (3, 5)))
    out.sum().backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained == {n for g in layer_groups(model)[-2:] for n in g.param_names}


# --- EWC -----------------------------------------------------------------------------------------

def _fisher_of(model, split, preprocess, n=16):
    return empirical_fisher(model, iter_batches(split.subset(list(range(n))), preprocess, 8))[0]


def test_ewc_penalty_zero_at_anchor_and_gradient_is_lambda_f_delta(tiny_splits):
    model = create_model("tinycnn", 2, seed=0)
    source = {n: p.detach().clone() for n, p in model.state_dict().items()}
    fisher = _fisher_of(model, tiny_splits.train, tiny_splits.preprocess)
    ewc = EWCPenalty.from_source(model, fisher, source, lam=7.0, exclude=head_parameter_names(model))
    assert set(ewc.fisher) == {n for n, _ in model.named_parameters()} - head_parameter_names(model)
    assert ewc.penalty(model).item() == 0.0
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.zero_grad()
    ewc.penalty(model).backward()
    for n, p in model.named_parameters():
        if n in ewc.fisher:
            assert torch.allclose(p.grad, 7.0 * fisher[n] * (p.detach() - source[n]), atol=1e-7)
        else:
            assert p.grad is None  # the head is not anchored
    delta = {n: p.detach() - source[n] for n, p in model.named_parameters() if n in fisher}
    expected = 0.5 * 7.0 * sum(float((fisher[n] * delta[n] ** 2).sum()) for n in ewc.fisher)
    assert ewc.penalty(model).item() == pytest.approx(expected, rel=1e-5)


def test_ewc_large_lambda_holds_high_fisher_parameters(tiny_splits):
    torch.set_num_threads(1)
    source_model = create_model("tinycnn", 2, seed=0)
    source = {n: p.detach().clone() for n, p in source_model.state_dict().items()}
    fisher = _fisher_of(source_model, tiny_splits.train, tiny_splits.preprocess, n=24)

    def moved(lam):
        model = create_model("tinycnn", 2, seed=0)
        model, _ = apply_strategy(model, "ewc")
        hooks = [] if lam is None else [EWCPenalty.from_source(
            model, fisher, source, lam=lam, exclude=head_parameter_names(model))]
        train(model, tiny_splits, epochs=2, lr=1e-2, batch_size=8, seed=0, progress=False,
              validate=False, hooks=hooks)
        return {n: (p.detach() - source[n]).abs() for n, p in model.named_parameters() if n in fisher}

    free, held = moved(None), moved(1e4)
    names = sorted(set(fisher) - head_parameter_names(source_model))
    f = torch.cat([fisher[n].flatten() for n in names])
    top = f >= f.quantile(0.9)  # the 10 % of parameters the source task relies on most
    d_free = torch.cat([free[n].flatten() for n in names])[top].mean()
    d_held = torch.cat([held[n].flatten() for n in names])[top].mean()
    assert d_held < 0.5 * d_free


def test_per_sample_fisher_is_not_the_square_of_a_batch_mean():
    # two samples whose gradients cancel exactly: x and -x, same label, at W = 0
    model = torch.nn.Linear(3, 2, bias=False)
    torch.nn.init.zeros_(model.weight)
    x = torch.tensor([[1.0, 2.0, -1.0], [-1.0, -2.0, 1.0]])
    y = torch.tensor([0, 0])
    fisher, info = empirical_fisher(model, [(x, y)], method="vmap")
    loss = torch.nn.functional.cross_entropy(model(x), y)  # the batch-mean gradient
    (g,) = torch.autograd.grad(loss, [model.weight])
    assert torch.allclose(g, torch.zeros_like(g))  # squared: a Fisher of zero, wrongly
    g1 = torch.outer(torch.tensor([-0.5, 0.5]), x[0])  # (softmax - onehot) x^T per sample
    assert torch.allclose(fisher["weight"], g1 ** 2, atol=1e-6)  # the mean of squares: not zero
    loop, _ = empirical_fisher(model, [(x, y)], method="loop")
    assert torch.allclose(loop["weight"], fisher["weight"], atol=1e-7)
    assert info["per_sample_gradients"] == "vmap" and info["n_samples"] == 2


def test_vmap_and_batch_size_one_fishers_agree_on_a_cnn(tiny_splits):
    model = create_model("tinycnn", 2, seed=0)
    batches = list(iter_batches(tiny_splits.train.subset(list(range(6))), tiny_splits.preprocess, 3))
    a, _ = empirical_fisher(model, batches, method="vmap")
    b, _ = empirical_fisher(model, batches, method="loop")
    for n in a:
        assert torch.allclose(a[n], b[n], rtol=1e-4, atol=1e-9), n


def test_online_ewc_consolidates_with_gamma():
    model = torch.nn.Linear(2, 2)
    f1 = {n: torch.full_like(p, 2.0) for n, p in model.named_parameters()}
    f2 = {n: torch.full_like(p, 1.0) for n, p in model.named_parameters()}
    state = {n: p.detach().clone() for n, p in model.named_parameters()}
    ewc = EWCPenalty.from_source(model, f1, state, lam=1.0, gamma=0.5)
    new_anchor = {n: p + 1 for n, p in state.items()}
    ewc.consolidate(f2, new_anchor)
    assert all(torch.allclose(ewc.fisher[n], torch.full_like(f1[n], 0.5 * 2.0 + 1.0)) for n in f1)
    assert all(torch.equal(ewc.anchor[n], new_anchor[n]) for n in f1) and ewc.tasks == 2


def test_ewc_excludes_reshaped_parameters():
    model = create_model("tinycnn", 3)  # a 3-class head; the source had 2
    source_model = create_model("tinycnn", 2)
    fisher = {n: torch.ones_like(p) for n, p in source_model.named_parameters()}
    ewc = EWCPenalty.from_source(model, fisher, source_model.state_dict(), lam=1.0)
    assert "head.weight" not in ewc.fisher and "head.weight" in ewc.excluded


def test_fisher_is_cached_next_to_the_source_model_and_retention_is_measured(tmp_path):
    src = create_model("tinycnn", 2, seed=0)
    task = SourceTask("tinycnn", 16, 0, "synthetic-source", src, ["benign", "malignant"],
                      tmp_path, "tinycnn_16px_test")
    f1, info1 = task.fisher(n_samples=8)
    f2, info2 = task.fisher(n_samples=8)
    assert not info1["cache_hit"] and info2["cache_hit"] and info1["n_samples"] == 8
    assert Path(info1["cache_path"]).parent == tmp_path and all(torch.equal(f1[n], f2[n]) for n in f1)
    model, _ = apply_strategy(create_model("tinycnn", 2, seed=1), "lora", lora_rank=2)
    out = source_retention(model, task, target_class_names=["benign", "malignant"])
    assert out["n_images"] == 200 and 0 <= out["accuracy_before"] <= 1
    assert out["accuracy_after"] is not None and out["accuracy_after_source_head"] is not None
    assert out["retention"] == pytest.approx(out["accuracy_after"] / out["accuracy_before"])
    other = source_retention(model, task, target_class_names=["a", "b"])
    assert other["accuracy_after"] is None and other["retention"] is None


# --- L2-SP ---------------------------------------------------------------------------------------

def test_l2sp_penalty_and_gradient():
    model = create_model("tinycnn", 2, seed=0)
    head = sorted(head_parameter_names(model))
    l2sp = L2SPPenalty.from_model(model, head, alpha=3.0, beta=0.5)
    head_sq = sum(float((p.detach() ** 2).sum()) for n, p in model.named_parameters() if n in head)
    assert l2sp.penalty(model).item() == pytest.approx(0.25 * head_sq)  # backbone at its start
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    model.zero_grad()
    l2sp.penalty(model).backward()
    for n, p in model.named_parameters():
        expected = 0.5 * p.detach() if n in head else 3.0 * (p.detach() - start[n])
        assert torch.allclose(p.grad, expected, atol=1e-6), n
    assert l2sp.param_groups(model, 1e-3, 0.01)[0]["weight_decay"] == 0.0


def test_l2sp_large_alpha_holds_the_backbone(tiny_splits):
    torch.set_num_threads(1)

    def moved(alpha):
        model = create_model("tinycnn", 2, seed=0)
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        model, _ = apply_strategy(model, "l2sp")
        hooks = build_hooks(model, "l2sp", StrategyOptions(l2sp_alpha=alpha, l2sp_beta=0.0))
        train(model, tiny_splits, epochs=2, lr=1e-2, batch_size=8, seed=0, progress=False,
              validate=False, hooks=hooks)
        head = head_parameter_names(model)
        return float(sum(((p.detach() - start[n]) ** 2).sum() for n, p in model.named_parameters()
                         if n not in head)) ** 0.5

    assert moved(100.0) < 0.5 * moved(0.0)


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, message", [
    ({"lr_decay": 0}, "--lr-decay"), ({"lr_decay": -2.6}, "--lr-decay"),
    ({"unfreeze_every": 0}, "--unfreeze-every"), ({"ewc_lambda": -1}, "--ewc-lambda"),
    ({"ewc_gamma": 1.5}, "--ewc-gamma"), ({"l2sp_alpha": -0.1}, "--l2sp-alpha"),
    ({"l2sp_beta": -1}, "--l2sp-beta"),
])
def test_out_of_range_options_are_usage_errors(kw, message):
    with pytest.raises(UsageError, match=message):
        StrategyOptions(**kw)


def test_ewc_without_source_data_is_refused(tmp_path):
    assert "needs source data" in source_task_problem("none", None, "ewc")
    assert "needs source data" in source_task_problem("imagenet", None, "ewc")
    assert "--source-data" in source_task_problem(str(tmp_path / "w.pt"), None, "ewc")
    assert source_task_problem("source", None, "ewc") is None
    assert "goes with --weights PATH" in source_task_problem("source", str(tmp_path), "finetune")
    model, _ = apply_strategy(create_model("tinycnn", 2), "ewc")
    with pytest.raises(UsageError, match="source"):
        build_hooks(model, "ewc", source=None)
