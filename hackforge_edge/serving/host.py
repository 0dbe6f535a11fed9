"""The model behind the server: bundle files, the onnxruntime session, readiness, and turning
validated requests into predictions. Built without touching onnxruntime; :meth:`ModelHost.load`
creates the session and :meth:`ModelHost.warm_up` runs it once on a dummy input.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hackforge_edge import __version__
from hackforge_edge.bundle import LABELS, MODEL, PREPROCESS, open_model, sha256_file
from hackforge_edge.data.preprocess import ImagePreprocess
from hackforge_edge.errors import BundleError, ServingError
from hackforge_edge.serving.batching import MicroBatcher
from hackforge_edge.serving.inputs import (
    RequestError,
    TensorSpec,
    binary_feed,
    dummy_feed,
    finite_or_none,
    images_to_batch,
    specs_of,
    tensor_feed,
)
from hackforge_edge.serving.providers import provider_options, resolve_providers
from hackforge_edge.serving.settings import ServeSettings
from hackforge_edge.serving.tabular_inputs import TabularSpec, format_tabular, rows_to_batch
from hackforge_edge.serving.text_inputs import is_text_preprocess, load_text_preprocess, texts_feed

log = logging.getLogger("hackforge_edge.serving")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class ModelHost:
    """Everything the routes need about the model: bundle files, session, readiness.

    Built from the bundle without touching onnxruntime; :meth:`load` creates the session and
    :meth:`warm_up` runs it on a dummy input. Methods called from the threadpool only read.
    """

    def __init__(self, model_path: str | Path, settings: ServeSettings, *, allow_incomplete: bool = False):
        self.settings = settings
        # verified first: an incomplete bundle or a file that changed since the run is refused
        self.ref = open_model(model_path, allow_incomplete=allow_incomplete)
        self.bundle = self.ref.bundle
        self.providers_requested = resolve_providers(settings.providers)
        self.labels = self._read_labels()
        pre = self.bundle.read_json_if_present(PREPROCESS) if self.bundle else None
        self.text = None  # text bundles: TextPreprocess over tokenizer.json (serving/text_inputs.py)
        if is_text_preprocess(pre):
            self.text, pre = load_text_preprocess(self.ref, pre), None
        kind = pre.get("kind", "image") if isinstance(pre, dict) else None
        try:
            self.preprocess = ImagePreprocess.from_json(pre) if kind == "image" else None
            self.tabular = TabularSpec.from_json(pre) if kind == "tabular" else None
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{self.bundle.path(PREPROCESS)}: invalid preprocessing ({exc})") from None
        self.manifest = self.bundle.manifest if self.bundle else None  # typed Manifest or None
        self.tasks = self._read_tasks()  # multi-head (merged) bundles: one output per task
        self.sha256 = sha256_file(self.ref.onnx_path)
        self.name = (self.manifest.name if self.manifest else
                     self.ref.bundle_dir.name if self.ref.bundle_dir else self.ref.onnx_path.stem)
        self.session = None
        self.load_error: str | None = None
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self.ready = threading.Event()
        self._run_slots: threading.BoundedSemaphore | None = None
        self.concurrent_runs = 0
        self.batcher: MicroBatcher | None = None
        self.warmup: dict[str, Any] = {"done": False}

    def _read_labels(self) -> list[str] | None:
        labels = self.bundle.read_json_if_present(LABELS) if self.bundle else None
        if labels is None:
            return None
        if not isinstance(labels, list) or not all(isinstance(x, (str, int)) for x in labels):
            raise BundleError(f"{self.bundle.path(LABELS)}: expected a JSON list of class names")
        return [str(x) for x in labels]

    def _read_tasks(self) -> list | None:
        data = self.bundle.read_json_if_present("tasks.json") if self.bundle else None
        if data is None:
            return None
        from hackforge_edge.merging.artifacts import TasksFile

        return TasksFile.from_json(data, source=str(self.bundle.path("tasks.json"))).tasks

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Create the InferenceSession (raises ServingError with a one-line reason)."""
        from hackforge_edge.runtime.session import make_session

        providers = self.providers_requested
        try:
            self.session = make_session(
                self.ref.onnx_path, providers=providers,
                provider_options=provider_options(providers, self.settings.trt_cache_dir),
                threads=self.settings.intra_op_threads, inter_op_threads=self.settings.inter_op_threads,
                error=ServingError)
        except ServingError as exc:
            self.load_error = str(exc)
            raise
        used = self.session.get_providers()
        self.concurrent_runs = self.settings.concurrent_runs(cpu_provider=used[0] == "CPUExecutionProvider")
        self._run_slots = threading.BoundedSemaphore(self.concurrent_runs)
        if self.settings.micro_batch_ms > 0:
            self.batcher = MicroBatcher(self._session_run, self.settings.micro_batch_ms / 1000,
                                        self.settings.micro_batch_max)
        self.inputs = specs_of(self.session.get_inputs())
        self.outputs = specs_of(self.session.get_outputs())
        if used[:1] != providers[:1]:
            log.warning("asked for providers %s but onnxruntime uses %s", providers, used)
        if self.preprocess is not None and self.preprocess.input_name not in {s.name for s in self.inputs}:
            raise BundleError(f"preprocess.json names input {self.preprocess.input_name!r} but the model "
                              f"takes {', '.join(s.name for s in self.inputs)}")
        n_classes = self._n_classes()
        if self.labels is not None and n_classes is not None and len(self.labels) != n_classes:
            log.warning("labels.json has %d labels but the model outputs %d classes; using indices "
                        "for the missing ones", len(self.labels), n_classes)
        manifest_sha = self.manifest_summary().get("sha256")
        if manifest_sha and manifest_sha != self.sha256:  # only with --allow-incomplete
            log.warning("serving anyway: model.onnx sha256 %s does not match the manifest's %s",
                        self.sha256[:12], manifest_sha[:12])

    def warm_up(self) -> None:
        """Run the session ``warmup_runs`` times on zeros, then mark ready (even on failure,
        which is recorded: a dummy input can fail where real ones work)."""
        t0 = time.perf_counter()
        try:
            feed = dummy_feed(self.inputs, self.preprocess)
            for _ in range(self.settings.warmup_runs):
                self.session.run(None, feed)
            self.warmup = {"done": True, "ok": True, "runs": self.settings.warmup_runs,
                           "seconds": round(time.perf_counter() - t0, 4)}
        except Exception as exc:  # noqa: BLE001 - recorded and logged; the model still serves real requests
            self.warmup = {"done": True, "ok": False, "error": _one_line(exc),
                           "seconds": round(time.perf_counter() - t0, 4)}
            log.warning("warm-up failed: %s", self.warmup["error"])
        self.ready.set()

    # ------------------------------------------------------------------ descriptions

    def _n_classes(self) -> int | None:
        if self.outputs and len(self.outputs[0].shape) == 2 and isinstance(self.outputs[0].shape[1], int):
            return self.outputs[0].shape[1]
        return len(self.labels) if self.labels else None

    def label(self, index: int) -> str:
        if self.labels is not None and index < len(self.labels):
            return self.labels[index]
        return str(index)

    @property
    def version(self) -> str:
        return f"{self.name}@{self.sha256[:12]}"

    def manifest_summary(self) -> dict[str, Any]:
        m = self.manifest
        if m is None:
            return {"name": None, "model": None, "strategy": None, "sha256": None,
                    "finished_at": None, "present": False,
                    "verified": False if self.bundle is not None else None}
        return {"name": m.name, "model": m.config.get("model"), "strategy": m.config.get("strategy"),
                "sha256": m.sha256_of(self.ref.onnx_path.name) or m.sha256_of(MODEL),
                "finished_at": m.finished_at, "present": True, "verified": self.bundle.verified}

    def metadata(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "model": {"name": self.name, "version": self.version, "sha256": self.sha256,
                      "path": self.ref.onnx_path.name},
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "labels": self.labels if self.labels is not None else (
                [str(i) for i in range(self._n_classes() or 0)]),
            "tasks": [t.model_dump() for t in self.tasks] if self.tasks else None,
            "preprocessing": (self.preprocess.to_json() if self.preprocess else
                              self.tabular.to_json() if self.tabular else None),
            "accepts": ["tensor", "binary-tensor"] + (["image"] if self.preprocess else [])
                       + (["rows"] if self.tabular else []) + (["texts"] if self.text else []),
            "text": self.text.to_json() if self.text else None,
            "providers": {"in_use": self.session.get_providers() if self.session else [],
                          "requested": self.providers_requested},
            "manifest": self.manifest_summary(),
            "limits": {**self.settings.public(), "concurrent_runs_in_use": self.concurrent_runs},
            "warmup": self.warmup,
            "micro_batching": None if self.batcher is None else {
                "window_ms": self.settings.micro_batch_ms, "max_items": self.settings.micro_batch_max,
                "batch_sizes_seen": {str(k): v for k, v in sorted(self.batcher.batch_sizes.items())}},
            "versions": {"hackforge_edge": __version__, "onnxruntime": ort.__version__},
        }

    # ------------------------------------------------------------------ inference (threadpool)

    def run(self, feed: dict[str, np.ndarray]) -> tuple[list[np.ndarray], float, float]:
        """``session.run`` on a validated feed -> (outputs, seconds waiting for a run slot or a
        micro-batch, seconds inside run). At most ``concurrent_runs`` runs execute at once."""
        t0 = time.perf_counter()
        if self.batcher is not None:
            outs, run_s = self.batcher.submit(feed).result()
            return outs, max(time.perf_counter() - t0 - run_s, 0.0), run_s
        with self._run_slots:
            t1 = time.perf_counter()
            outs, run_s = self._session_run(feed)
            return outs, t1 - t0, run_s

    def _session_run(self, feed: dict[str, np.ndarray]) -> tuple[list[np.ndarray], float]:
        t = time.perf_counter()
        try:
            outs = self.session.run(None, feed)
        except Exception as exc:  # noqa: BLE001 - a feed that passed validation yet fails in the graph
            raise RequestError(f"the model rejected this input: {_one_line(exc)}", 422,
                               "inference_failed") from None
        return outs, time.perf_counter() - t

    def predict_images(self, blobs: Sequence[bytes]) -> tuple[dict, float, float]:
        if self.preprocess is None:
            raise RequestError("this model has no preprocess.json: send a JSON tensor "
                               '{"inputs": {name: nested list}}', 415, "images_not_supported")
        batch = images_to_batch(blobs, self.preprocess, self.settings)
        outs, wait_s, run_s = self.run({self.preprocess.input_name: batch})
        return self.format(outs), wait_s, run_s

    def predict_texts(self, texts: Any) -> tuple[dict, float, float]:
        if self.text is None:
            raise RequestError('this model takes no text: it has no text preprocess.json/tokenizer.json',
                               415, "texts_not_supported")
        feed, info = texts_feed(texts, self.text, self.settings)
        outs, wait_s, run_s = self.run(feed)
        result = self.format(outs)
        for pred, extra in zip(result["predictions"], info):
            pred.update(extra)
        return result, wait_s, run_s

    def predict_tensor(self, payload: dict) -> tuple[dict, float, float]:
        feed = tensor_feed(payload, self.inputs, self.settings)
        outs, wait_s, run_s = self.run(feed)
        return self.format(outs), wait_s, run_s

    def predict_rows(self, rows: Any) -> tuple[dict, float, float]:
        if self.tabular is None:
            raise RequestError('"rows" needs a tabular bundle (preprocess.json of kind "tabular")', 415,
                               "rows_not_supported")
        batch = rows_to_batch(rows, self.tabular, self.settings)
        outs, wait_s, run_s = self.run({self.tabular.input_name: batch})
        return format_tabular(outs, [s.name for s in self.outputs], self.tabular), wait_s, run_s

    def predict_binary(self, body: bytes, headers: Mapping[str, str]) -> tuple[dict, float, float]:
        feed = binary_feed(body, headers, self.inputs, self.settings)
        outs, wait_s, run_s = self.run(feed)
        return self.format(outs), wait_s, run_s

    def format(self, outs: list[np.ndarray]) -> dict[str, Any]:
        """First output [N, C] -> predictions with softmax probabilities (an output already named
        ``prob*`` is taken as probabilities); any other shape is returned raw under ``outputs``."""
        first = np.asarray(outs[0])
        if first.ndim != 2 or first.dtype.kind != "f":
            return {"predictions": [], "outputs": {s.name: np.asarray(o).tolist()
                                                   for s, o in zip(self.outputs, outs)}}
        probs = first.astype(np.float64) if "prob" in self.outputs[0].name.lower() else _softmax(first)
        result: dict[str, Any] = {"predictions": _predictions(probs, self.label)}
        if self.tasks:  # every task's prediction from its own output (tasks.json)
            names = [s.name for s in self.outputs]
            result["tasks"] = {}
            for t in self.tasks:
                if t.output not in names:
                    raise ServingError(f"tasks.json names output {t.output!r}; the model has {names}")
                labels = t.labels
                result["tasks"][t.name] = {"output": t.output, "predictions": _predictions(
                    _softmax(np.asarray(outs[names.index(t.output)])),
                    lambda i, labels=labels: labels[i] if i < len(labels) else str(i))}
        return result


def _predictions(probs: np.ndarray, label) -> list[dict[str, Any]]:
    """Rows of probabilities -> [{"label", "index", "probabilities"}]."""
    preds = []
    for row in probs:
        idx = int(np.nanargmax(row)) if np.isfinite(row).any() else 0
        preds.append({"label": label(idx), "index": idx,
                      "probabilities": {label(i): finite_or_none(p) for i, p in enumerate(row)}})
    return preds
