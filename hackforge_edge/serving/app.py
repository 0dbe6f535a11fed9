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
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from hackforge_edge import __version__
from hackforge_edge.bundle import LABELS, MODEL, PREPROCESS, open_model, sha256_file
from hackforge_edge.data.preprocess import ImagePreprocess
from hackforge_edge.errors import BundleError, HFEdgeError, ServingError
from hackforge_edge.serving.batching import MicroBatcher
from hackforge_edge.serving.inputs import (
    RequestError,
    TensorSpec,
    binary_feed,
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
from hackforge_edge.serving.settings import ServeSettings, load_settings
from hackforge_edge.serving.tabular_inputs import TabularSpec, format_tabular, rows_to_batch
from hackforge_edge.serving.text_inputs import is_text_preprocess, load_text_preprocess, texts_feed

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


# ---------------------------------------------------------------------- responses


class FastJSONResponse(JSONResponse):
    """JSON through orjson: several times faster than the standard library's encoder on the
    prediction bodies; non-finite floats were already mapped to null by ``format``."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


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
               settings: ServeSettings | None = None, allow_incomplete: bool = False) -> FastAPI:
    """Build the FastAPI app serving ``model_path`` (a bundle directory or an .onnx file).

    The bundle (opened through ``Bundle.open``: complete, every file matching the manifest,
    unless ``allow_incomplete``), providers and settings are checked here
    (ServingError/BundleError with a one-line message); the session is created when the app
    starts (lifespan).
    """
    settings = settings if settings is not None else load_settings()
    if providers:
        settings = settings.model_copy(update={"providers": tuple(providers)})
    host = ModelHost(model_path, settings, allow_incomplete=allow_incomplete)
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
            if host.batcher is not None:
                host.batcher.close()

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
        elif ctype.startswith("image/"):
            # one raw image as the body: no multipart parsing, no base64
            result, wait_s, run_s = await run_in_threadpool(host.predict_images, [await request.body()])
        elif ctype == "application/octet-stream":
            body = await request.body()
            result, wait_s, run_s = await run_in_threadpool(host.predict_binary, body, request.headers)
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
            elif "rows" in payload:
                result, wait_s, run_s = await run_in_threadpool(host.predict_rows, payload["rows"])
            else:
                result, wait_s, run_s = await run_in_threadpool(host.predict_tensor, payload)
        else:
            raise RequestError(f"unsupported Content-Type {ctype!r}: use multipart/form-data, image/*, "
                               "application/octet-stream or application/json", 415,
                               "unsupported_media_type")
        metrics.inference.observe(run_s)
        metrics.predictions.inc(len(result["predictions"]))
        result["model"] = {"name": host.name, "sha256": host.sha256[:12], "version": host.version}
        result["latency_ms"] = {"inference": round(run_s * 1000, 3), "queue": round(wait_s * 1000, 3),
                                "total": round((time.perf_counter() - t0) * 1000, 3)}
        return FastJSONResponse(result)

    # outermost last: metrics see the guard's 401/413 too
    app.add_middleware(GuardMiddleware, settings=settings)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
