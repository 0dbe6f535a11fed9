"""Load test of ``hf-edge serve`` on loopback: served throughput vs raw ``session.run``.

Builds a MobileNetV2 bundle (torchvision, weights=None, 224x224, legacy ONNX exporter with a
dynamic batch) in a temp dir, starts the real server on 127.0.0.1 in a subprocess, and:

1. raw: N threads call ``session.run`` at batch 1 on the preprocessed test image, in this
   process, with the same onnxruntime thread settings as the server (server idle meanwhile);
2. served: N client threads POST the same JPEG as a multipart upload to /v1/predict for the
   given duration (keep-alive connections, body encoded once);
3. raw again: on a shared machine the background load drifts, so the raw rate is measured
   before and after the served phase and the ratio uses their mean (both are printed).

Prints a table: errors, latency p50/p90/p99 (ms), throughput (req/s), raw runs/s, their ratio,
and the server's RSS (MB, psutil) before and after the load. Everything is bounded in time
and talks to 127.0.0.1 only.

    python benchmarks/serve_load.py --seconds 30 --clients 8 --intra-op-threads 1
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np


def build_bundle(out: Path, num_classes: int, size: int) -> Path:
    """MobileNetV2 (random weights) -> model.onnx + labels/preprocess/manifest."""
    import torch
    import torchvision

    from hackforge_edge.bundle import sha256_file
    from hackforge_edge.data.preprocess import ImagePreprocess

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes).eval()
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, size, size),), str(out / "model.onnx"), dynamo=False,
                          input_names=["input"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    labels = [f"class_{i}" for i in range(num_classes)]
    (out / "labels.json").write_text(json.dumps(labels))
    (out / "preprocess.json").write_text(json.dumps(ImagePreprocess(image_size=(size, size)).to_json()))
    (out / "manifest.json").write_text(json.dumps({
        "name": "mobilenet_v2-load", "finished_at": None,
        "config": {"model": "mobilenet_v2", "strategy": "none", "exporter": "torchscript-legacy"},
        "artifacts": {"model.onnx": {"sha256": sha256_file(out / "model.onnx"),
                                     "bytes": (out / "model.onnx").stat().st_size}}, "versions": {}}))
    return out


def test_image(width: int = 320, height: int = 240) -> bytes:
    """A photo-like JPEG (smooth gradients + noise), so decoding and resizing do real work."""
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(0)
    rgb = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def percentile_ms(values: list[float], q: float) -> float:
    """``q``-th percentile in ms of latencies in seconds (the package's one definition)."""
    from hackforge_edge.runtime.timing import percentile

    return percentile([v * 1000 for v in values], q) if values else float("nan")


def raw_throughput(onnx_path: Path, x: np.ndarray, threads: int, seconds: float, intra: int, inter: int) -> dict:
    """runs/s of ``session.run`` at batch 1 from ``threads`` threads on one session."""
    from hackforge_edge.runtime.session import make_session

    # the server's session options: the same factory, the same thread settings
    sess = make_session(onnx_path, threads=intra or None, inter_op_threads=inter or None)
    for _ in range(5):
        sess.run(None, {"input": x})
    counts = [0] * threads
    lat: list[list[float]] = [[] for _ in range(threads)]
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            sess.run(None, {"input": x})
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
            "p50_ms": percentile_ms(flat, 50), "p99_ms": percentile_ms(flat, 99)}


def start_server(bundle: Path, log_path: Path, intra: int, inter: int, max_batch: int) -> tuple:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_EDGE_")}
    cmd = [sys.executable, "-c", "import sys; from hackforge_edge.cli import main; sys.exit(main(sys.argv[1:]))",
           "serve", str(bundle), "--host", "127.0.0.1", "--port", "0", "--no-access-log",
           "--intra-op-threads", str(intra), "--inter-op-threads", str(inter), "--max-batch", str(max_batch),
           "--log-level", "info"]  # info: the "running on" line carries the port
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    import httpx

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited:\n" + log_path.read_text(errors="replace")[-3000:])
        m = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", log_path.read_text(errors="replace"))
        if m:
            try:
                if httpx.get(m.group(1) + "/readyz", timeout=5).status_code == 200:
                    return proc, m.group(1)
            except httpx.TransportError:
                pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server not ready after 180 s:\n" + log_path.read_text(errors="replace")[-3000:])


def served_load(base: str, jpeg: bytes, clients: int, seconds: float, server_pid: int) -> dict:
    import httpx
    import psutil

    server = psutil.Process(server_pid)

    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    lat: list[list[float]] = [[] for _ in range(clients)]
    infer: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    labels: set[str] = set()
    stop = time.perf_counter() + seconds
    lock = threading.Lock()

    def worker(i: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    r = c.post("/v1/predict", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(type(exc).__name__)
                    continue
                dt = time.perf_counter() - t
                if r.status_code != 200:
                    with lock:
                        errors.append(str(r.status_code))
                    continue
                data = r.json()
                lat[i].append(dt)
                infer[i].append(data["latency_ms"]["inference"] / 1000)
                with lock:
                    labels.add(data["predictions"][0]["label"])

    cpu0 = sum(server.cpu_times()[:2])
    client_cpu0 = sum(os.times()[:2])
    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu_s = sum(server.cpu_times()[:2]) - cpu0
    client_cpu_s = sum(os.times()[:2]) - client_cpu0
    flat = [v for chunk in lat for v in chunk]
    flat_inf = [v for chunk in infer for v in chunk]
    return {"server_cpu_ms_per_request": cpu_s * 1000 / max(len(flat), 1),
            "client_cpu_ms_per_request": client_cpu_s * 1000 / max(len(flat), 1), "ok": len(flat), "errors": len(errors), "error_kinds": sorted(set(errors)), "seconds": elapsed,
            "per_s": len(flat) / elapsed, "p50_ms": percentile_ms(flat, 50), "p90_ms": percentile_ms(flat, 90),
            "p99_ms": percentile_ms(flat, 99), "mean_ms": float(np.mean(flat) * 1000) if flat else float("nan"),
            "server_run_p50_ms": percentile_ms(flat_inf, 50), "labels": sorted(labels)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="served load duration (s)")
    ap.add_argument("--raw-seconds", type=float, default=10.0,
                    help="raw session.run duration (s), before and again after the served phase")
    ap.add_argument("--clients", type=int, default=8, help="concurrent client threads (also raw threads)")
    ap.add_argument("--intra-op-threads", type=int, default=1, help="onnxruntime intra-op threads (0 = ORT default)")
    ap.add_argument("--inter-op-threads", type=int, default=0, help="onnxruntime inter-op threads (0 = ORT default)")
    ap.add_argument("--num-classes", type=int, default=2)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--bundle", type=Path, help="reuse this bundle instead of building MobileNetV2")
    ap.add_argument("--json", type=Path, help="also write the record here")
    args = ap.parse_args(argv)

    import psutil
    from PIL import Image

    from hackforge_edge.data.preprocess import ImagePreprocess

    with tempfile.TemporaryDirectory(prefix="hf-edge-load-") as tmp:
        tmp = Path(tmp)
        bundle = args.bundle or build_bundle(tmp / "mobilenet_v2", args.num_classes, args.image_size)
        pre = ImagePreprocess.from_json(json.loads((bundle / "preprocess.json").read_text()))
        jpeg = test_image()
        x = pre.pil_to_chw(Image.open(io.BytesIO(jpeg)))[None]

        proc, base = start_server(bundle, tmp / "server.log", args.intra_op_threads, args.inter_op_threads,
                                  max(args.clients, 1))
        try:
            ps = psutil.Process(proc.pid)
            rss_before = ps.memory_info().rss / 1e6
            raw_before = raw_throughput(bundle / "model.onnx", x, args.clients, args.raw_seconds,
                                        args.intra_op_threads, args.inter_op_threads)
            served = served_load(base, jpeg, args.clients, args.seconds, proc.pid)
            raw_after = raw_throughput(bundle / "model.onnx", x, args.clients, args.raw_seconds,
                                       args.intra_op_threads, args.inter_op_threads)
            rss_after = ps.memory_info().rss / 1e6
            alive = proc.poll() is None
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    record = {"clients": args.clients, "intra_op_threads": args.intra_op_threads,
              "inter_op_threads": args.inter_op_threads, "cpu_count": os.cpu_count(),
              "loadavg_1m": os.getloadavg()[0], "raw_before": raw_before, "raw_after": raw_after,
              "served": served, "raw_per_s_mean": (raw_before["per_s"] + raw_after["per_s"]) / 2,
              "server_rss_mb": {"before": rss_before, "after": rss_after}, "server_alive_after": alive}
    record["ratio_served_over_raw"] = served["per_s"] / record["raw_per_s_mean"]
    raw_cpu = (raw_before["cpu_ms_per_run"] + raw_after["cpu_ms_per_run"]) / 2
    # CPU time is far less sensitive than wall time to other tenants of a shared machine
    record["ratio_cpu_raw_over_served"] = raw_cpu / served["server_cpu_ms_per_request"]
    rows = [
        ("clients (threads)", f"{args.clients}"),
        ("ORT intra/inter-op threads", f"{args.intra_op_threads}/{args.inter_op_threads} (0 = ORT default)"),
        ("duration served / raw (s)", f"{served['seconds']:.1f} / {raw_before['seconds']:.1f} + "
                                      f"{raw_after['seconds']:.1f}"),
        ("requests ok / errors", f"{served['ok']} / {served['errors']} {served['error_kinds'] or ''}".strip()),
        ("latency p50 / p90 / p99 (ms)", f"{served['p50_ms']:.1f} / {served['p90_ms']:.1f} / {served['p99_ms']:.1f}"),
        ("server session.run p50 (ms)", f"{served['server_run_p50_ms']:.1f}"),
        ("served throughput (req/s)", f"{served['per_s']:.1f}"),
        ("raw session.run, batch 1 (runs/s)", f"{record['raw_per_s_mean']:.1f} (before {raw_before['per_s']:.1f}, "
                                              f"after {raw_after['per_s']:.1f}; p50 {raw_before['p50_ms']:.1f} ms)"),
        ("ratio served / raw (throughput)", f"{record['ratio_served_over_raw']:.2f}"),
        ("CPU ms: raw per run / server per request", f"{raw_cpu:.1f} / {served['server_cpu_ms_per_request']:.1f} "
                                                     f"(ratio {record['ratio_cpu_raw_over_served']:.2f})"),
        ("CPU ms: load clients per request", f"{served['client_cpu_ms_per_request']:.1f} (on the same cores as the server)"),
        ("server RSS before / after (MB)", f"{rss_before:.0f} / {rss_after:.0f}"),
        ("machine", f"{os.cpu_count()} CPUs, load avg (1 min) {record['loadavg_1m']:.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"| {'metric'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))
    return 0 if served["errors"] == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
