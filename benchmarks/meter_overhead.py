"""Overhead of the energy meter on a short CPU training-like loop.

Times the same fixed-step loop (a small MLP, SGD, one torch thread) unmetered and metered:

* ``estimate, 1 window``      -- the auto meter on a machine without sensors (CPU TDP estimate),
  one window around the whole loop (how the pipeline meters a phase);
* ``estimate, window/step``   -- the same meter with a window around every step (worst case);
* ``jetson polling, 1 window`` -- a polling backend at its default interval on a fake Jetson
  sysfs tree (temp dir), to show the cost of the background sampling thread.

Configurations are interleaved (rotated order) over several rounds; the table shows the median
wall and process CPU time per configuration and the median per-round ratio metered/unmetered
(target: overhead < 1 %), plus the cost of one begin/end pair. Process CPU time counts every
thread of the process, so it includes the polling thread and is less disturbed than wall time
by other processes competing for the cores. Timings on a shared machine are noisy: read the median and the
spread together.

    python benchmarks/meter_overhead.py [--steps 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def make_fake_jetson(root: Path) -> None:
    hw = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    hw.mkdir(parents=True)
    for n, (label, mv, ma) in {1: ("VDD_IN", 5000, 1000), 2: ("VDD_CPU_GPU_CV", 5000, 400),
                               3: ("VDD_SOC", 5000, 200)}.items():
        (hw / f"in{n}_label").write_text(label + "\n")
        (hw / f"in{n}_input").write_text(f"{mv}\n")
        (hw / f"curr{n}_input").write_text(f"{ma}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args()

    import torch

    from hackforge_edge.energy.meter import make_meter

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(args.hidden, args.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(args.hidden, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, args.hidden)
    y = torch.randint(0, 10, (64,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    tmp = tempfile.TemporaryDirectory()
    make_fake_jetson(Path(tmp.name))
    empty = tempfile.TemporaryDirectory()
    est = make_meter("auto", sysfs_root=empty.name)  # no sensors here -> CPU estimate
    jet = make_meter("auto", sysfs_root=tmp.name)     # fake Jetson -> polling thread, default interval
    assert jet.method == "jetson-ina3221", jet.method

    def unmetered() -> None:
        for _ in range(args.steps):
            step()

    def one_window(meter):
        def run() -> None:
            meter.begin("loop")
            for _ in range(args.steps):
                step()
            meter.end("loop")
        return run

    def per_step(meter):
        def run() -> None:
            for _ in range(args.steps):
                meter.begin("step")
                step()
                meter.end("step")
        return run

    configs = {
        "unmetered": unmetered,
        f"{est.method}, 1 window": one_window(est),
        f"{est.method}, window/step": per_step(est),
        f"{jet.method} polling {jet.backends[0].poller.interval_s:g} s, 1 window": one_window(jet),
    }
    for _ in range(20):  # warm-up
        step()
    wall: dict[str, list[float]] = {k: [] for k in configs}
    cpu: dict[str, list[float]] = {k: [] for k in configs}
    names = list(configs)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            c0, t0 = time.process_time(), time.perf_counter()
            configs[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)  # all threads: includes the poller

    def pair_cost_us(meter, n: int = 2000) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            meter.begin("p")
            meter.end("p")
        return (time.perf_counter() - t0) / n * 1e6

    def ratio(d: dict[str, list[float]], name: str) -> float:
        # median over rounds of (this run / the same round's unmetered run): pairs cancel drift
        return statistics.median(a / b for a, b in zip(d[name], d["unmetered"]))

    print(f"steps={args.steps} rounds={args.rounds} hidden={args.hidden} torch threads=1")
    print("wall = perf_counter; cpu = process_time (all threads of this process, polling thread included)\n")
    print("| configuration | wall median s | wall min-max s | wall ratio | cpu median s | cpu ratio |")
    print("|---|---|---|---|---|---|")
    for name in names:
        w, c = wall[name], cpu[name]
        print(f"| {name} | {statistics.median(w):.4f} | {min(w):.3f}-{max(w):.3f} | {ratio(wall, name):.4f} "
              f"| {statistics.median(c):.4f} | {ratio(cpu, name):.4f} |")
    print()
    base = statistics.median(wall["unmetered"])
    print(f"begin/end pair: {est.method} {pair_cost_us(est):.1f} us, {jet.method} {pair_cost_us(jet):.1f} us")
    poller = jet.backends[0].poller
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        poller.sample_now()
    sample_us = (time.perf_counter() - t0) / n * 1e6
    print(f"one polling sample ({len(jet.backends[0].rails)} rails): {sample_us:.1f} us -> polling thread "
          f"costs {sample_us * 1e-6 / poller.interval_s:.4%} of one core at {poller.interval_s:g} s")
    print(f"one step unmetered: {base / args.steps * 1e6:.1f} us; "
          f"one window around the loop adds ~{pair_cost_us(est) / (base * 1e6):.5%} of the loop's wall time "
          f"({est.method})")
    tmp.cleanup()
    empty.cleanup()


if __name__ == "__main__":
    main()
