"""Text requests: ``{"texts": [...]}`` -> token ids with the bundle's own tokenizer.

Uses only ``tokenizers`` and numpy (no torch, no transformers): the bundle's ``tokenizer.json``
and ``preprocess.json`` rebuild the exact :class:`~hackforge_edge.data.text_preprocess.TextPreprocess`
training used. Limits: at most ``max_batch`` texts and ``max_text_chars`` characters per text
(checked before tokenizing); longer token sequences are truncated to the bundle's
``max_length`` exactly as in training, and the response says so per text.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hackforge_edge.bundle import PREPROCESS
from hackforge_edge.errors import BundleError
from hackforge_edge.serving.inputs import RequestError

TOKENIZER = "tokenizer.json"


def is_text_preprocess(pre: Any) -> bool:
    return isinstance(pre, dict) and pre.get("kind") == "text"


def load_text_preprocess(ref, pre: dict):
    """The bundle's TextPreprocess; a missing or unreadable tokenizer.json is a BundleError."""
    from hackforge_edge.data.text_preprocess import TextPreprocess

    name = pre.get("tokenizer") or TOKENIZER
    path = ref.bundle.path(name) if ref.bundle is not None and ref.bundle.has(name) else None
    if path is None:
        raise BundleError(f"{ref.bundle_dir}: {PREPROCESS} is for text but the bundle has no {TOKENIZER}")
    try:
        return TextPreprocess.from_json(pre, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: invalid text preprocessing ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - tokenizers raises its own Exception subclass on a bad file
        raise BundleError(f"{path}: not a readable tokenizers file ({exc})") from None


def texts_feed(texts: Any, preprocess, settings) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Validate ``texts`` and tokenize: (feed, per-text {"tokens", "truncated"})."""
    if not isinstance(texts, list) or not texts:
        raise RequestError('"texts" must be a non-empty list of strings', 422, "invalid_payload")
    if len(texts) > settings.max_batch:
        raise RequestError(f"{len(texts)} texts; the maximum batch is {settings.max_batch}", 413,
                           "batch_too_large")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise RequestError(f"texts[{i}] is a {type(t).__name__}, not a string", 422, "invalid_text")
        if not t.strip():
            raise RequestError(f"texts[{i}] is empty", 422, "invalid_text")
        if len(t) > settings.max_text_chars:
            raise RequestError(f"texts[{i}] has {len(t)} characters; the limit is "
                               f"{settings.max_text_chars}", 413, "text_too_long")
    feed = preprocess.encode(texts)
    info = [{"tokens": int(n), "truncated": cut} for n, cut in preprocess.lengths(texts)]
    return {k: feed[k] for k in preprocess.input_names}, info
