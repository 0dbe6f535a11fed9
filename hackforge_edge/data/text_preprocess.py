"""Text -> model inputs, shared by training and serving (numpy + ``tokenizers``; no torch, no
transformers).

Training builds every batch with :meth:`TextPreprocess.encode`, the bundle carries the same
tokenizer as ``tokenizer.json`` (the ``tokenizers`` library's own file) and ``preprocess.json``
records the maximum length, so a server turns a text into exactly the token ids the model saw.
Padding is done here in numpy (right padding to the longest text of the batch, or to a given
length) rather than by the tokenizer, so one code path decides it everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def configure(tokenizer: "Tokenizer", max_length: int) -> "Tokenizer":
    """Truncate to ``max_length`` tokens (special tokens included); padding is done in numpy."""
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=int(max_length))
    return tokenizer


def pad_id_of(tokenizer: "Tokenizer") -> int:
    """The tokenizer's padding id: its own padding setting, else [PAD]/<pad>, else 0."""
    if tokenizer.padding and tokenizer.padding.get("pad_id") is not None:
        return int(tokenizer.padding["pad_id"])
    for token in ("[PAD]", "<pad>"):
        tid = tokenizer.token_to_id(token)
        if tid is not None:
            return int(tid)
    return 0


def train_wordpiece(texts: Sequence[str], vocab_size: int) -> "Tokenizer":
    """A BERT-style uncased WordPiece tokenizer trained on ``texts`` (for config-built models
    that ship no tokenizer, e.g. the tests' tiny BERT); [PAD] is id 0."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=int(vocab_size), special_tokens=list(SPECIAL_TOKENS),
                                        show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


@dataclass
class TextPreprocess:
    """Texts -> {"input_ids", "attention_mask"} int64 [N, L]; L = longest text of the batch
    (at most ``max_length`` tokens) unless ``pad_to`` fixes it."""

    tokenizer: "Tokenizer" = field(repr=False)
    max_length: int
    origin: dict[str, Any] = field(default_factory=dict)  # where the tokenizer came from
    kind: str = "text"
    input_names: tuple[str, ...] = INPUT_NAMES
    dtype: str = "int64"

    def __post_init__(self) -> None:
        configure(self.tokenizer, self.max_length)
        self.pad_id = pad_id_of(self.tokenizer)

    def encode(self, texts: Sequence[str], pad_to: int | None = None) -> dict[str, np.ndarray]:
        """Tokenize, truncate to ``max_length`` (or ``pad_to`` if smaller) and right-pad."""
        encs = self.tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encs]
        width = int(pad_to) if pad_to else max((len(i) for i in ids), default=1)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            seq = seq[:width]
            input_ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text after truncation (special tokens included)."""
        return [n for n, _ in self.lengths(texts)]

    def lengths(self, texts: Sequence[str]) -> list[tuple[int, bool]]:
        """(tokens after truncation, whether the text was truncated) per text."""
        return [(len(e.ids), bool(e.overflowing)) for e in self.tokenizer.encode_batch(list(texts))]

    def split_batch(self, split, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The training loop's hook: the feed for rows ``idx`` of a TextSplit."""
        return self.encode([split.texts[i] for i in idx])

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_length": int(self.max_length), "tokenizer": TOKENIZER_FILE,
                "input_names": list(self.input_names), "dtype": self.dtype, "pad_id": int(self.pad_id),
                "padding": "right, to the longest text of the request", "truncation": "right",
                "vocab_size": int(self.tokenizer.get_vocab_size()), "origin": self.origin}

    def save(self, directory: str | Path) -> Path:
        """Write ``tokenizer.json`` (atomically) into ``directory``."""
        from hackforge_edge.bundle import atomic_write_text

        return atomic_write_text(Path(directory) / TOKENIZER_FILE, self.tokenizer.to_str())

    @classmethod
    def from_json(cls, d: dict[str, Any], tokenizer_path: str | Path) -> "TextPreprocess":
        """Rebuild from ``preprocess.json`` and the bundle's ``tokenizer.json``."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_path))
        return cls(tokenizer=tok, max_length=int(d["max_length"]), origin=dict(d.get("origin") or {}),
                   input_names=tuple(d.get("input_names") or INPUT_NAMES))
