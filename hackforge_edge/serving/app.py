"""The HTTP server: a FastAPI app over ONE onnxruntime ``InferenceSession``.

Routes::

    GET  /healthz       process alive (always open)
    GET  /readyz        200 once the model is loaded and warmed up, 503 before (always open)
    GET  /v1/metadata   inputs, outputs, labels, preprocessing, providers, bundle manifest summary
    POST /v1/predict    multipart image(s) | {"images": [base64]} | {"texts": [str]} | {"inputs": {...}} | {"tensor": ...}
    GET  /metrics       Prometheus text

With ``HF_EDGE_API_KEY`` set, every route except /healthz and /readyz needs
``Authorization: Bearer <key>``. Every refusal is a 4xx JSON ``{"error": {"code", "message"}}``.

The session is created in the lifespan (a broken model stops start-up with a one-line error)
and warmed up in a background thread, so /healthz answers while a slow first run (TensorRT
engine build) happens. ``session.run`` is thread-safe and releases the GIL: predictions run in
Starlette's threadpool, leaving the event loop free.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from hackforge_edge import __version__
from hackforge_edge.bundle import LABELS, MANIFEST, MODEL, PREPROCESS, resolve_model, sha256_file
from hackforge_edge.errors import BundleError, HFEdgeError, ServingError
from hackforge_edge.data.preprocess import ImagePreprocess
from hackforge_edge.serving.inputs import (
    RequestError,
    TensorSpec,
    decode_base64,
    dummy_feed,
    finite_or_none,
    images_to_batch,
    parse_json,
    specs_of,
    tensor_feed,
)
from hackforge_edge.serving.metrics import MetricsMiddleware, ServingMetrics
from hackforge_edge.serving.providers import provider_options, resolve_providers
from hackforge_edge.serving.text_inputs import is_text_preprocess, load_text_preprocess, texts_feed
from hackforge_edge.serving.settings import ServeSettings, load_settings

log = logging.getLogger("hackforge_edge.serving")

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
ROUTES = ("/healthz", "/readyz", "/v1/metadata", "/v1/predict", "/metrics")


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

    def __init__(self, model_path: str | Path, settings: ServeSettings):
        self.settings = settings
        self.ref = resolve_model(model_path)
        self.providers_requested = resolve_providers(settings.providers)
        self.labels = self._read_labels()
        pre = self.ref.read_sidecar(PREPROCESS)
        self.text = None  # text bundles: TextPreprocess over tokenizer.json (serving/text_inputs.py)
        if is_text_preprocess(pre):
            self.text, pre = load_text_preprocess(self.ref, pre), None
        try:
            self.preprocess = ImagePreprocess.from_json(pre) if pre is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{self.ref.sidecar(PREPROCESS)}: invalid preprocessing ({exc})") from None
        if self.preprocess is not None and self.preprocess.kind != "image":
            self.preprocess = None  # only image preprocessing is understood by the server
        self.manifest = self.ref.read_sidecar(MANIFEST) or {}
        self.sha256 = sha256_file(self.ref.onnx_path)
        self.name = str(self.manifest.get("name") or (self.ref.bundle_dir.name if self.ref.bundle_dir
                                                       else self.ref.onnx_path.stem))
        self.session = None
        self.load_error: str | None = None
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self.ready = threading.Event()
        self._run_slots: threading.BoundedSemaphore | None = None
        self.concurrent_runs = 0
        self.warmup: dict[str, Any] = {"done": False}

    def _read_labels(self) -> list[str] | None:
        labels = self.ref.read_sidecar(LABELS)
        if labels is None:
            return None
        if not isinstance(labels, list) or not all(isinstance(x, (str, int)) for x in labels):
            raise BundleError(f"{self.ref.sidecar(LABELS)}: expected a JSON list of class names")
        return [str(x) for x in labels]

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Create the InferenceSession (raises ServingError with a one-line reason)."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        if self.settings.intra_op_threads:
            so.intra_op_num_threads = self.settings.intra_op_threads
        if self.settings.inter_op_threads:
            so.inter_op_num_threads = self.settings.inter_op_threads
        providers = self.providers_requested
        try:
            self.session = ort.InferenceSession(
                str(self.ref.onnx_path), sess_options=so, providers=providers,
                provider_options=provider_options(providers, self.settings.trt_cache_dir))
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            self.load_error = (f"{self.ref.onnx_path}: onnxruntime could not load the model: "
                               f"{_one_line(exc)}")
            raise ServingError(self.load_error) from None
        used = self.session.get_providers()
        self.concurrent_runs = self.settings.concurrent_runs(cpu_provider=used[0] == "CPUExecutionProvider")
        self._run_slots = threading.BoundedSemaphore(self.concurrent_runs)
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
        if manifest_sha and manifest_sha != self.sha256:
            log.warning("model.onnx sha256 %s does not match the manifest's %s", self.sha256[:12],
                        manifest_sha[:12])

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
        except Exception as exc:  # recorded and logged; the model still serves real requests
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
        config = m.get("config") if isinstance(m.get("config"), dict) else {}
        artifacts = m.get("artifacts") if isinstance(m.get("artifacts"), dict) else {}
        entry = artifacts.get(self.ref.onnx_path.name) or artifacts.get(MODEL) or {}
        return {"name": m.get("name"), "model": config.get("model"), "strategy": config.get("strategy"),
                "sha256": entry.get("sha256") if isinstance(entry, dict) else None,
                "finished_at": m.get("finished_at"), "present": bool(m)}

    def metadata(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "model": {"name": self.name, "version": self.version, "sha256": self.sha256,
                      "path": self.ref.onnx_path.name},
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "labels": self.labels if self.labels is not None else (
                [str(i) for i in range(self._n_classes() or 0)]),
            "preprocessing": self.preprocess.to_json() if self.preprocess else None,
            "accepts": ["tensor"] + (["image"] if self.preprocess else []) + (["texts"] if self.text else []),
            "text": self.text.to_json() if self.text else None,
            "providers": {"in_use": self.session.get_providers() if self.session else [],
                          "requested": self.providers_requested},
            "manifest": self.manifest_summary(),
            "limits": {**self.settings.public(), "concurrent_runs_in_use": self.concurrent_runs},
            "warmup": self.warmup,
            "versions": {"hackforge_edge": __version__, "onnxruntime": ort.__version__},
        }

    # ------------------------------------------------------------------ inference (threadpool)

    def run(self, feed: dict[str, np.ndarray]) -> tuple[list[np.ndarray], float, float]:
        """``session.run`` on a validated feed -> (outputs, seconds waiting for a run slot,
        seconds inside run). At most ``concurrent_runs`` runs execute at once."""
        t0 = time.perf_counter()
        with self._run_slots:
            t1 = time.perf_counter()
            try:
                outs = self.session.run(None, feed)
            except Exception as exc:  # a feed that passed validation yet fails in the graph
                raise RequestError(f"the model rejected this input: {_one_line(exc)}", 422,
                                   "inference_failed") from None
            return outs, t1 - t0, time.perf_counter() - t1

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

    def format(self, outs: list[np.ndarray]) -> dict[str, Any]:
        """First output [N, C] -> predictions with softmax probabilities (an output already named
        ``prob*`` is taken as probabilities); any other shape is returned raw under ``outputs``."""
        first = np.asarray(outs[0])
        if first.ndim != 2 or first.dtype.kind != "f":
            return {"predictions": [], "outputs": {s.name: np.asarray(o).tolist()
                                                   for s, o in zip(self.outputs, outs)}}
        probs = first.astype(np.float64) if "prob" in self.outputs[0].name.lower() else _softmax(first)
        preds = []
        for row in probs:
            idx = int(np.nanargmax(row)) if np.isfinite(row).any() else 0
            preds.append({"label": self.label(idx), "index": idx,
                          "probabilities": {self.label(i): finite_or_none(p) for i, p in enumerate(row)}})
        return {"predictions": preds}


# ---------------------------------------------------------------------- error bodies


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    """The one error body shape: ``{"error": {"code", "message"}}`` (message on one line)."""
    return JSONResponse({"error": {"code": code, "message": _one_line(message, 500)}},
                        status_code=status, headers=headers)


class GuardMiddleware:
    """Pure ASGI: bearer-token check, then the body-size limit, before any route reads a byte.

    The limit is checked on ``Content-Length`` up front and again while the body streams in
    (chunked uploads have no length), so an oversized body is never buffered whole.
    """

    def __init__(self, app, settings: ServeSettings):
        self.app = app
        self.settings = settings
        self._key = settings.api_key.encode() if settings.api_key else None

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(token.strip(), self._key)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self._key is not None and scope.get("path") not in OPEN_PATHS and not self._authorised(headers):
            resp = error_response(401, "unauthorized", "missing or wrong bearer token",
                                  {"WWW-Authenticate": "Bearer"})
            await resp(scope, receive, send)
            return
        limit = self.settings.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await error_response(400, "bad_request", "invalid Content-Length")(scope, receive, send)
                return
            if declared > limit:
                await error_response(413, "body_too_large", f"request body of {declared} bytes exceeds "
                                     f"the limit of {limit} bytes")(scope, receive, send)
                return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestError(f"request body exceeds the limit of {limit} bytes", 413,
                                       "body_too_large")
            return message

        await self.app(scope, limited_receive, send)


# ---------------------------------------------------------------------- the app


def create_app(model_path: str | Path, *, providers: Sequence[str] | None = None,
               settings: ServeSettings | None = None) -> FastAPI:
    """Build the FastAPI app serving ``model_path`` (a bundle directory or an .onnx file).

    The bundle, providers and settings are checked here (ServingError/BundleError with a
    one-line message); the session is created when the app starts (lifespan).
    """
    settings = settings if settings is not None else load_settings()
    if providers:
        settings = replace(settings, providers=tuple(providers))
    host = ModelHost(model_path, settings)
    metrics = ServingMetrics(ROUTES)

    @asynccontextmanager
    async def lifespan(app):
        import asyncio

        try:
            if host.session is None:  # `hf-edge serve` loads before the server starts
                host.load()
        except HFEdgeError as exc:
            host.load_error = str(exc)
            log.error("cannot serve: %s", exc)
            raise
        log.info("model %s loaded on %s", host.version, host.session.get_providers())
        warm = asyncio.create_task(run_in_threadpool(host.warm_up))
        warm.add_done_callback(lambda _t: metrics.ready.set(1 if host.ready.is_set() else 0))
        try:
            yield
        finally:
            if not warm.done():
                await warm  # a running session.run cannot be interrupted; let it finish

    app = FastAPI(title="hackforge-edge model server", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.host = host
    app.state.metrics = metrics
    app.state.settings = settings

    # ---- errors: always a JSON body, never a traceback page

    @app.exception_handler(RequestError)
    async def _request_error(_req, exc: RequestError):
        return error_response(exc.status, exc.code, str(exc))

    @app.exception_handler(HFEdgeError)
    async def _hfedge_error(_req, exc: HFEdgeError):
        return error_response(400, "bad_request", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail),
                              getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_req, exc: RequestValidationError):
        return error_response(422, "invalid_payload", str(exc.errors()[:3]))

    @app.exception_handler(Exception)
    async def _unexpected(_req, exc: Exception):
        log.exception("unexpected error while serving a request")
        return error_response(500, "internal", f"internal error ({type(exc).__name__})")

    # ---- routes

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        if not host.ready.is_set():
            return error_response(503, "not_ready", "model is loading or warming up")
        return {"status": "ready", "model": host.version, "warmup": host.warmup}

    @app.get("/v1/metadata")
    async def metadata():
        return host.metadata()

    @app.get("/metrics")
    async def prometheus():
        body, ctype = metrics.render()
        return Response(body, media_type=ctype)

    @app.post("/v1/predict")
    async def predict(request: Request):
        t0 = time.perf_counter()
        if not host.ready.is_set():
            raise RequestError("model is loading or warming up", 503, "not_ready")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.headers.get("content-length") == "0":
            raise RequestError("empty request body", 400, "empty_body")
        if ctype == "multipart/form-data":
            form = await request.form(max_files=settings.max_batch + 1, max_fields=16)
            try:
                items = form.getlist("file") + form.getlist("files")
                if not items:
                    raise RequestError('no image: upload it in the multipart field "file" (or "files")',
                                       422, "invalid_payload")
                if not all(isinstance(i, UploadFile) for i in items):
                    raise RequestError('"file"/"files" must be file uploads', 422, "invalid_payload")
                if len(items) > settings.max_batch:
                    raise RequestError(f"{len(items)} images; the maximum batch is {settings.max_batch}",
                                       413, "batch_too_large")
                blobs = [await i.read() for i in items]
            finally:
                await form.close()
            result, wait_s, run_s = await run_in_threadpool(host.predict_images, blobs)
        elif ctype in ("application/json", ""):
            payload = parse_json(await request.body())
            if "texts" in payload:
                result, wait_s, run_s = await run_in_threadpool(host.predict_texts, payload["texts"])
            elif "images" in payload:
                images = payload["images"]
                if not isinstance(images, list) or not images:
                    raise RequestError('"images" must be a non-empty list of base64 strings', 422,
                                       "invalid_payload")
                if len(images) > settings.max_batch:
                    raise RequestError(f"{len(images)} images; the maximum batch is {settings.max_batch}",
                                       413, "batch_too_large")
                blobs = [decode_base64(x, i) for i, x in enumerate(images)]
                result, wait_s, run_s = await run_in_threadpool(host.predict_images, blobs)
            else:
                result, wait_s, run_s = await run_in_threadpool(host.predict_tensor, payload)
        else:
            raise RequestError(f"unsupported Content-Type {ctype!r}: use multipart/form-data or "
                               "application/json", 415, "unsupported_media_type")
        metrics.inference.observe(run_s)
        metrics.predictions.inc(len(result["predictions"]))
        result["model"] = {"name": host.name, "sha256": host.sha256[:12], "version": host.version}
        result["latency_ms"] = {"inference": round(run_s * 1000, 3), "queue": round(wait_s * 1000, 3),
                                "total": round((time.perf_counter() - t0) * 1000, 3)}
        return JSONResponse(result)

    # outermost last: metrics see the guard's 401/413 too
    app.add_middleware(GuardMiddleware, settings=settings)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
