"""Prometheus metrics, one registry per app (no module-level singletons).

Series (seconds, counts):

* ``hf_edge_requests_total{route,method,status}``       every HTTP request
* ``hf_edge_request_duration_seconds{route}``            wall time from first byte to response
* ``hf_edge_errors_total{route,status}``                 responses with status >= 400
* ``hf_edge_inference_duration_seconds``                 time inside ``session.run`` only
* ``hf_edge_predictions_total``                          items predicted (a batch of 4 counts 4)
* ``hf_edge_model_ready``                                1 once the model is loaded and warmed up

``route`` is the route template (``/v1/predict``) or ``other`` for unknown paths, so a scanner
probing random URLs cannot blow up the number of series.
"""

from __future__ import annotations

import time
from typing import Iterable

# latency buckets (seconds): 1 ms .. 10 s, dense where CPU edge inference lives
_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25,
            0.5, 1.0, 2.5, 5.0, 10.0)


class ServingMetrics:
    """The app's metric families in their own :class:`prometheus_client.CollectorRegistry`."""

    def __init__(self, routes: Iterable[str] = ()):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.routes = set(routes)
        self.requests = Counter("hf_edge_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("hf_edge_request_duration_seconds",
                                 "HTTP request wall time (seconds) by route", ["route"],
                                 buckets=_BUCKETS, registry=self.registry)
        self.errors = Counter("hf_edge_errors", "HTTP error responses (status >= 400) by route and status",
                              ["route", "status"], registry=self.registry)
        self.inference = Histogram("hf_edge_inference_duration_seconds",
                                   "Time inside onnxruntime session.run (seconds)", buckets=_BUCKETS,
                                   registry=self.registry)
        self.predictions = Counter("hf_edge_predictions", "Items predicted (images or tensor rows)",
                                   registry=self.registry)
        self.ready = Gauge("hf_edge_model_ready", "1 when the model is loaded and warmed up",
                           registry=self.registry)

    def route_label(self, path: str) -> str:
        return path if path in self.routes else "other"

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        route = self.route_label(path)
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)
        if status >= 400:
            self.errors.labels(route=route, status=str(status)).inc()

    def render(self) -> tuple[bytes, str]:
        """Prometheus text exposition and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (outermost, so refusals count too)."""

    def __init__(self, app, metrics: ServingMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app dies before answering, that is what the client sees

        async def send_wrapper(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(scope.get("path", ""), scope.get("method", ""), status,
                                         time.perf_counter() - start)
