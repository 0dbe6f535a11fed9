"""Strategies: after a few optimiser steps exactly the promised parameters have changed."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hackforge_edge.errors import UsageError  # noqa: E402
from hackforge_edge.models.registry import create_model  # noqa: E402
from hackforge_edge.strategies.registry import STRATEGIES, apply_strategy, lora_targets  # noqa: E402

# What each strategy promises to train, as a predicate on PEFT/plain parameter names.
PROMISES = {
    "scratch": lambda n, head: True,
    "finetune": lambda n, head: True,
    "frozen": lambda n, head: n.startswith(head + "."),
    "lora": lambda n, head: "lora_" in n or f".{head}.modules_to_save." in n,
    # without their loop hooks (tests/test_transfer_strategies.py has those promises):
    "progressive": lambda n, head: n.startswith(head + "."),  # epoch 1: the head only
    "ewc": lambda n, head: True,
    "l2sp": lambda n, head: True,
}
CASES = [("tinycnn", 8), ("mobilenet_v3_small", 32)]


def test_every_strategy_has_a_case():
    assert set(STRATEGIES) == set(PROMISES), "add new strategies to PROMISES"


def _steps(model, px, n=3):
    torch.manual_seed(0)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x, y = torch.randn(4, 3, px, px), torch.tensor([0, 1, 0, 1])
    for _ in range(n):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("name,px", CASES)
@pytest.mark.parametrize("strategy", sorted(PROMISES))
def test_exactly_promised_parameters_change(name, px, strategy):
    torch.set_num_threads(1)
    model = create_model(name, 2, "none", seed=0)
    head = model.hf_edge_meta["head"]
    model, report = apply_strategy(model, strategy, lora_rank=2, lora_alpha=4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _steps(model, px)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    promised = {n for n in before if PROMISES[strategy](n, head)}
    assert changed == promised
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == promised
    assert report.trainable_params == sum(p.numel() for n, p in model.named_parameters() if n in promised)
    assert report.frozen_params == report.total_params - report.trainable_params
    assert report.total_fp32_mb == pytest.approx(report.total_params * 4 / 1e6, abs=1e-4)
    if strategy == "lora":
        assert report.adapter_params > 0 and report.lora["rank"] == 2
        assert report.adapter_params + report.head_params == report.trainable_params
    else:
        assert report.adapter_params == 0
        assert report.deployed_params == report.total_params


def test_lora_skips_grouped_convs_and_merges_back():
    model = create_model("mobilenet_v3_small", 2, "none")
    targeted, skipped = lora_targets(model)
    assert skipped and all(model.get_submodule(n).groups > 1 for n in skipped)
    assert "classifier.3" not in targeted
    wrapped, report = apply_strategy(model, "lora", lora_rank=2)
    _steps(wrapped, 32, n=2)
    wrapped.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = wrapped(x)
        merged = wrapped.merge_and_unload()  # what the exporter does before ONNX
        assert torch.allclose(merged(x), expected, atol=1e-4)
    assert sum(p.numel() for p in merged.parameters()) == report.deployed_params
    assert merged.hf_edge_meta["strategy"] == "lora"


def test_scratch_reinitialises_pretrained_weights(tmp_path):
    src = create_model("tinycnn", 2, seed=5)
    path = tmp_path / "w.pt"
    torch.save(src.state_dict(), path)
    m, _ = apply_strategy(create_model("tinycnn", 2, str(path)), "scratch", seed=0)
    assert not torch.equal(m.features[0].weight, src.features[0].weight)
    assert m.hf_edge_meta["weights"]["reinitialised_by"] == "scratch"


def test_unknown_strategy_and_bad_lora_options():
    with pytest.raises(UsageError, match="valid: scratch"):
        apply_strategy(create_model("tinycnn", 2), "progressive-magic")
    with pytest.raises(UsageError, match="lora-rank"):
        apply_strategy(create_model("tinycnn", 2), "lora", lora_rank=0)
