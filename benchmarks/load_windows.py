"""Timed windows of load for ``serve_load.py``: threads calling a function, keep-alive HTTP
connections POSTing to the server, and the merge of consecutive windows (slices) into one.

Each window returns its count, seconds, rate, CPU per call or request, latency percentiles and
the latencies themselves (``latencies_s``), so that slices can be merged exactly.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import numpy as np


def percentile_ms(values: list[float], q: float) -> float:
    """``q``-th percentile in ms of latencies in seconds (the package's one definition)."""
    from hackforge_edge.runtime.timing import percentile

    return percentile([v * 1000 for v in values], q) if values else float("nan")


def threads_loop(call, threads: int, seconds: float) -> dict:
    """``call()`` from ``threads`` threads for ``seconds``: calls/s, CPU ms per call, p50/p99."""
    counts = [0] * threads
    lat: list[list[float]] = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            call()
            lat[i].append(time.perf_counter() - t)
            counts[i] += 1

    cpu0 = sum(os.times()[:2])
    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu_s = sum(os.times()[:2]) - cpu0
    flat = [v for chunk in lat for v in chunk]
    return {"runs": sum(counts), "seconds": elapsed, "per_s": sum(counts) / elapsed,
            "cpu_ms_per_run": cpu_s * 1000 / max(sum(counts), 1),
            "p50_ms": percentile_ms(flat, 50), "p99_ms": percentile_ms(flat, 99), "latencies_s": flat}


class _Conn:
    """One keep-alive HTTP/1.1 connection of the load generator, read without blocking."""

    def __init__(self, host: str, port: int, request: bytes):
        self.addr = (host, port)
        self.request = request
        self.sock: socket.socket | None = None
        self.buf = b""
        self.sent_at = 0.0

    def send(self) -> None:
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sent_at = time.perf_counter()
        self.sock.setblocking(True)
        self.sock.sendall(self.request)
        self.sock.setblocking(False)

    def read(self) -> tuple[int, bytes] | None:
        """(status, body) once the whole response is in, None while it is not; raises on a
        closed connection or a response without Content-Length (uvicorn always sends one)."""
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk
        head, sep, rest = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return None
        lines = head.split(b"\r\n")
        length = next((int(v) for k, _, v in (ln.partition(b":") for ln in lines[1:])
                       if k.strip().lower() == b"content-length"), None)
        if length is None:
            raise ConnectionError("response without Content-Length")
        if len(rest) < length:
            return None
        return int(lines[0].split()[1]), rest[:length]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def served_load(base: str, body: bytes, headers: dict[str, str], clients: int, seconds: float,
                server_pid: int) -> dict:
    """``clients`` keep-alive connections, each POSTing ``body`` again as soon as its response is in,
    for ``seconds``.

    All connections are driven by ONE thread with ``selectors``: the load generator shares this
    machine's cores with the server, and every wake-up of a client thread preempts a thread
    running the model and evicts part of its cache. Eight ``http.client`` threads cost 0.4 ms of
    CPU per request and about 3.5 involuntary context switches of the server's run threads per
    request; a remote client costs the server nothing of the kind. Every response is still
    parsed (JSON) and checked.
    """
    import selectors
    from urllib.parse import urlsplit

    import psutil

    server = psutil.Process(server_pid)
    where = urlsplit(base)
    head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": str(len(body))}.items())
    request = (f"POST /v1/predict HTTP/1.1\r\nHost: {where.netloc}\r\n{head}\r\n").encode() + body
    lat: list[float] = []
    infer: list[float] = []
    errors: list[str] = []
    labels: set[str] = set()
    sel = selectors.DefaultSelector()
    conns = [_Conn(where.hostname, where.port, request) for _ in range(clients)]

    cpu0 = sum(server.cpu_times()[:2])
    client_cpu0 = sum(os.times()[:2])
    t0 = time.perf_counter()
    stop = t0 + seconds
    for c in conns:
        c.send()
        sel.register(c.sock, selectors.EVENT_READ, c)
    while sel.get_map():
        events = sel.select(timeout=60)
        if not events:
            errors.extend(["timeout"] * len(sel.get_map()))
            break
        for key, _ in events:
            c = key.data
            try:
                done = c.read()
            except OSError as exc:
                errors.append(type(exc).__name__)
                sel.unregister(c.sock)
                c.close()
                if time.perf_counter() < stop:
                    c.send()
                    sel.register(c.sock, selectors.EVENT_READ, c)
                continue
            if done is None:
                continue
            status, payload = done
            if status != 200:
                errors.append(str(status))
            else:
                lat.append(time.perf_counter() - c.sent_at)
                data = json.loads(payload)
                infer.append(data["latency_ms"]["inference"] / 1000)
                labels.add(data["predictions"][0]["label"])
            if time.perf_counter() < stop:
                c.send()
            else:
                sel.unregister(c.sock)
                c.close()
    elapsed = time.perf_counter() - t0
    cpu_s = sum(server.cpu_times()[:2]) - cpu0
    client_cpu_s = sum(os.times()[:2]) - client_cpu0
    sel.close()
    return {"server_cpu_ms_per_request": cpu_s * 1000 / max(len(lat), 1),
            "client_cpu_ms_per_request": client_cpu_s * 1000 / max(len(lat), 1), "ok": len(lat),
            "errors": len(errors), "error_kinds": sorted(set(errors)), "seconds": elapsed,
            "per_s": len(lat) / elapsed, "p50_ms": percentile_ms(lat, 50), "p90_ms": percentile_ms(lat, 90),
            "p99_ms": percentile_ms(lat, 99), "mean_ms": float(np.mean(lat) * 1000) if lat else float("nan"),
            "server_run_p50_ms": percentile_ms(infer, 50), "labels": sorted(labels), "latencies_s": lat,
            "inference_s": infer}


def merge_windows(windows: list[dict]) -> dict:
    """Consecutive slices of one phase (``served_load`` or ``threads_loop`` results) -> one
    result over their total time: counts and CPU summed, latency percentiles over all requests."""
    if len(windows) == 1:
        return windows[0]
    count_key = "ok" if "ok" in windows[0] else "runs"
    cpu_keys = [k for k in ("server_cpu_ms_per_request", "client_cpu_ms_per_request", "cpu_ms_per_run")
                if k in windows[0]]
    n = sum(w[count_key] for w in windows)
    seconds = sum(w["seconds"] for w in windows)
    lat = [v for w in windows for v in w["latencies_s"]]
    out = {count_key: n, "seconds": seconds, "per_s": n / seconds, "latencies_s": lat,
           "p50_ms": percentile_ms(lat, 50), "p99_ms": percentile_ms(lat, 99), "slices": len(windows),
           "slice_per_s": [w["per_s"] for w in windows]}
    for k in cpu_keys:  # per-request CPU weighted by each slice's request count
        out[k] = sum(w[k] * w[count_key] for w in windows) / max(n, 1)
    if count_key == "ok":
        infer = [v for w in windows for v in w["inference_s"]]
        out.update(errors=sum(w["errors"] for w in windows), inference_s=infer,
                   error_kinds=sorted({k for w in windows for k in w["error_kinds"]}),
                   p90_ms=percentile_ms(lat, 90), mean_ms=float(np.mean(lat) * 1000) if lat else float("nan"),
                   server_run_p50_ms=percentile_ms(infer, 50),
                   labels=sorted({lb for w in windows for lb in w["labels"]}))
    return out
