"""The HTTP server: a FastAPI app over ONE onnxruntime ``InferenceSession``.

Routes::

    GET  /healthz       process alive (always open)
    GET  /readyz        200 once the model is loaded and warmed up, 503 before (always open)
    GET  /v1/metadata   inputs, outputs, labels, preprocessing, providers, bundle manifest summary
    POST /v1/predict    multipart image(s) | image/* body | octet-stream tensor (X-Tensor-Shape) |
                        JSON {"images": [base64]} | {"texts": [str]} | {"rows": ...} | {"inputs": {...}} | {"tensor": ...}
    GET  /metrics       Prometheus text

With ``HF_EDGE_API_KEY`` set, every route except /healthz and /readyz needs
``Authorization: Bearer <key>``. Every refusal is a 4xx JSON ``{"error": {"code", "message"}}``.

``POST /v1/predict`` is answered by :class:`PredictEndpoint`, a pure ASGI endpoint in front of
FastAPI's router (inside the auth/body-limit guard and the metrics middleware); every other
route is a FastAPI route.

The session is created in the lifespan (a broken model stops start-up with a one-line error)
and warmed up in a background thread, so /healthz answers while a slow first run (TensorRT
engine build) happens. ``session.run`` is thread-safe and releases the GIL: predictions run in
a pool of as many threads as runs may execute at once (:class:`RunPool`), leaving the event
loop free.
"""

from __future__ import annotations

import hmac
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Sequence

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from hackforge_edge import __version__
from hackforge_edge.errors import HFEdgeError
from hackforge_edge.serving.host import ModelHost, _one_line
from hackforge_edge.serving.inputs import RequestError, decode_base64, parse_json
from hackforge_edge.serving.metrics import MetricsMiddleware, ServingMetrics
from hackforge_edge.serving.settings import ServeSettings, load_settings

log = logging.getLogger("hackforge_edge.serving")

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
ROUTES = ("/healthz", "/readyz", "/v1/metadata", "/v1/predict", "/metrics")


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


class RunPool:
    """The threads that turn requests into predictions: as many as runs may execute at once.

    Requests beyond that wait in the executor's queue, inside the event loop's process but in
    no thread, instead of as blocked threads in Starlette's 40-thread pool: on 2 cores with 8
    clients that cut the server's CPU per request (benchmarks/serve_load.py; docker/README.md).
    With micro-batching on, every queued request must reach the batcher to be batched, so the
    pool gets a thread per batch slot as well.
    """

    def __init__(self, host: ModelHost, settings: ServeSettings):
        from concurrent.futures import ThreadPoolExecutor

        workers = host.concurrent_runs + (settings.micro_batch_max if host.batcher is not None else 0)
        self.workers = max(1, workers)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="hf-edge-run")

    async def call(self, fn, *args):
        """``fn(*args)`` -> (result, wait_s, run_s) in a pool thread; the time the request waited
        for a thread is added to its wait."""
        import asyncio

        submitted = time.perf_counter()

        def job():
            started = time.perf_counter()
            result, wait_s, run_s = fn(*args)
            return result, wait_s + (started - submitted), run_s

        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _error_for(exc: Exception) -> JSONResponse:
    """The JSON refusal for an exception raised while answering: a RequestError keeps its status
    and code, a toolkit error is a 400, Starlette's HTTP errors keep their status; anything else
    is logged and answered with a 500 (never a traceback page)."""
    if isinstance(exc, RequestError):
        return error_response(exc.status, exc.code, str(exc))
    if isinstance(exc, HFEdgeError):
        return error_response(400, "bad_request", str(exc))
    if isinstance(exc, StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail),
                              getattr(exc, "headers", None))
    if isinstance(exc, RequestValidationError):
        return error_response(422, "invalid_payload", str(exc.errors()[:3]))
    log.error("unexpected error while serving a request", exc_info=exc)
    return error_response(500, "internal", f"internal error ({type(exc).__name__})")


class PredictEndpoint:
    """Pure ASGI: ``POST /v1/predict``, the one hot route, answered without FastAPI's router.

    Written by hand because FastAPI's per-request machinery (routing, the exception and
    exit-stack middlewares, dependency solving for a handler that takes the raw ``Request``)
    cost about 0.6 ms of CPU per request on the 2-core reference VM, against about 9 ms for a
    MobileNetV2 run (``benchmarks/serve_load.py``, docker/README.md), and this route needs none
    of it: it reads the raw body by Content-Type. Every other path goes on to FastAPI; the
    guard (auth, body limit) and the metrics middleware sit outside this one.
    """

    PATHS = frozenset({"/v1/predict", "/v1/predict/"})  # FastAPI redirected the slash; accept it

    def __init__(self, app, host: ModelHost, settings: ServeSettings, metrics: ServingMetrics):
        self.app = app
        self.host = host
        self.settings = settings
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in self.PATHS:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            response = error_response(405, "method_not_allowed", "Method Not Allowed", {"Allow": "POST"})
        else:
            try:
                response = await self.predict(Request(scope, receive))
            except Exception as exc:  # noqa: BLE001 - every failure becomes a JSON refusal
                response = _error_for(exc)
        await response(scope, receive, send)

    async def predict(self, request: Request) -> FastJSONResponse:
        t0 = time.perf_counter()
        host = self.host
        pool = request.app.state.pool
        if not host.ready.is_set() or pool is None:
            raise RequestError("model is loading or warming up", 503, "not_ready")
        result, wait_s, run_s = await _prediction(request, host, self.settings, pool)
        self.metrics.inference.observe(run_s)
        self.metrics.predictions.inc(len(result["predictions"]))
        result["model"] = {"name": host.name, "sha256": host.sha256[:12], "version": host.version}
        result["latency_ms"] = {"inference": round(run_s * 1000, 3), "queue": round(wait_s * 1000, 3),
                                "total": round((time.perf_counter() - t0) * 1000, 3)}
        return FastJSONResponse(result)


def _install_error_handlers(app: FastAPI) -> None:
    """Every refusal on FastAPI's routes as ``{"error": {"code", "message"}}`` (:func:`_error_for`)."""
    async def handler(_req, exc: Exception) -> JSONResponse:
        return _error_for(exc)

    for kind in (RequestError, HFEdgeError, StarletteHTTPException, RequestValidationError, Exception):
        app.add_exception_handler(kind, handler)


def _check_batch(n: int, settings: ServeSettings) -> None:
    if n > settings.max_batch:
        raise RequestError(f"{n} images; the maximum batch is {settings.max_batch}", 413, "batch_too_large")


async def _multipart_images(request: Request, settings: ServeSettings) -> list[bytes]:
    form = await request.form(max_files=settings.max_batch + 1, max_fields=16)
    try:
        items = form.getlist("file") + form.getlist("files")
        if not items:
            raise RequestError('no image: upload it in the multipart field "file" (or "files")',
                               422, "invalid_payload")
        if not all(isinstance(i, UploadFile) for i in items):
            raise RequestError('"file"/"files" must be file uploads', 422, "invalid_payload")
        _check_batch(len(items), settings)
        return [await i.read() for i in items]
    finally:
        await form.close()


async def _json_prediction(payload: dict, host: ModelHost, settings: ServeSettings, pool: RunPool):
    if "texts" in payload:
        return await pool.call(host.predict_texts, payload["texts"])
    if "images" in payload:
        images = payload["images"]
        if not isinstance(images, list) or not images:
            raise RequestError('"images" must be a non-empty list of base64 strings', 422, "invalid_payload")
        _check_batch(len(images), settings)
        return await pool.call(host.predict_images, [decode_base64(x, i) for i, x in enumerate(images)])
    if "rows" in payload:
        return await pool.call(host.predict_rows, payload["rows"])
    return await pool.call(host.predict_tensor, payload)


async def _prediction(request: Request, host: ModelHost, settings: ServeSettings, pool: RunPool):
    """(result, seconds waiting, seconds in session.run) for one /v1/predict request, by its
    Content-Type; the work runs in ``pool``, off the event loop."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.headers.get("content-length") == "0":
        raise RequestError("empty request body", 400, "empty_body")
    if ctype == "multipart/form-data":
        return await pool.call(host.predict_images, await _multipart_images(request, settings))
    if ctype.startswith("image/"):  # one raw image as the body: no multipart parsing, no base64
        return await pool.call(host.predict_images, [await request.body()])
    if ctype == "application/octet-stream":
        return await pool.call(host.predict_binary, await request.body(), request.headers)
    if ctype in ("application/json", ""):
        return await _json_prediction(parse_json(await request.body()), host, settings, pool)
    raise RequestError(f"unsupported Content-Type {ctype!r}: use multipart/form-data, image/*, "
                       "application/octet-stream or application/json", 415, "unsupported_media_type")


def _lifespan(host: ModelHost, settings: ServeSettings, metrics: ServingMetrics):
    """The app's lifespan: load the model (unless loaded), open the RunPool as
    ``app.state.pool`` (its size needs the session), warm up in the background; on shutdown
    wait for the warm-up, close the pool and batcher."""

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
        app.state.pool = RunPool(host, settings)
        warm = asyncio.create_task(run_in_threadpool(host.warm_up))
        warm.add_done_callback(lambda _t: metrics.ready.set(1 if host.ready.is_set() else 0))
        try:
            yield
        finally:
            if not warm.done():
                await warm  # a running session.run cannot be interrupted; let it finish
            app.state.pool.close()
            app.state.pool = None
            if host.batcher is not None:
                host.batcher.close()

    return lifespan


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
    app = FastAPI(title="hackforge-edge model server", version=__version__,
                  lifespan=_lifespan(host, settings, metrics), docs_url=None, redoc_url=None)
    app.state.pool = None  # the RunPool, opened by the lifespan
    app.state.host = host
    app.state.metrics = metrics
    app.state.settings = settings
    _install_error_handlers(app)

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

    # outermost last: metrics see the guard's 401/413 too; /v1/predict is answered inside both
    app.add_middleware(PredictEndpoint, host=host, settings=settings, metrics=metrics)
    app.add_middleware(GuardMiddleware, settings=settings)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
