"""Timing calls: warm-up, a bounded number of timed runs, and one percentile definition.

Latency is wall-clock ``time.perf_counter`` around each call, in milliseconds, warm-up
calls excluded. Percentiles interpolate linearly between order statistics (numpy's default,
Hyndman & Fan type 7): p50 is the median.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from hackforge_edge.errors import UsageError

METHOD = "time.perf_counter around each call, warm-up excluded"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linear interpolation (numpy's default)."""
    import numpy as np

    if not len(values):
        raise ValueError("percentile of no values")
    return float(np.percentile(np.asarray(values, dtype=float), q))


@dataclass(frozen=True)
class Timing:
    """Per-call times of one timed loop (ms), with the warm-up calls that preceded it."""

    times_ms: tuple[float, ...]
    warmup: int = 0

    @property
    def runs(self) -> int:
        return len(self.times_ms)

    def percentile_ms(self, q: float) -> float:
        return percentile(self.times_ms, q)

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def mean_ms(self) -> float:
        return sum(self.times_ms) / len(self.times_ms)

    @property
    def min_ms(self) -> float:
        return min(self.times_ms)

    @property
    def std_ms(self) -> float:
        m = self.mean_ms
        return (sum((t - m) ** 2 for t in self.times_ms) / len(self.times_ms)) ** 0.5

    def summary(self) -> dict[str, float]:
        """{"p50", "p90", "p95", "p99", "mean", "min", "max", "std"} in ms."""
        return {"p50": self.p50_ms, "p90": self.percentile_ms(90), "p95": self.percentile_ms(95),
                "p99": self.percentile_ms(99), "mean": self.mean_ms, "min": self.min_ms,
                "max": max(self.times_ms), "std": self.std_ms}


def warm_up(fn: Callable[[], object], calls: int) -> float:
    """Call ``fn`` ``calls`` times (at least once); seconds per call."""
    calls = max(1, int(calls))
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def runs_within(seconds_per_call: float, runs: int, max_seconds: float | None,
                min_runs: int = 5) -> int:
    """``runs``, lowered so the timed loop takes about ``max_seconds`` (never below ``min_runs``)."""
    if max_seconds is None:
        return runs
    return int(min(runs, max(min_runs, max_seconds // max(seconds_per_call, 1e-6))))


def time_calls(fn: Callable[[], object], *, warmup: int = 3, runs: int = 20,
               max_seconds: float | None = None, min_runs: int = 5,
               after_each: Callable[[], object] | None = None) -> Timing:
    """Warm up (``warmup`` calls; none when 0), then time up to ``runs`` calls of ``fn``.

    With ``max_seconds``, the warm-up's time per call caps the timed runs (at least
    ``min_runs``; ``Timing.runs`` says how many). ``after_each`` runs untimed after each call.
    """
    if runs < 1 or warmup < 0:
        raise UsageError(f"need runs >= 1 and warmup >= 0 (got {runs}, {warmup})")
    if warmup or max_seconds is not None:
        per_call = warm_up(fn, warmup)
        warmup = max(1, warmup)
        runs = runs_within(per_call, runs, max_seconds, min_runs)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if after_each is not None:
            after_each()
    return Timing(tuple(times), warmup)


def time_interleaved(fns: Sequence[Callable[[], object]], *, warmup: int = 3,
                     runs: int = 20) -> list[Timing]:
    """Time several callables round-robin: each round calls every one once, and the order
    rotates between rounds so none always follows the same neighbour. Slow drift in the
    machine's load then hits all alike; engines that keep threads spinning after a call must
    not be timed this way (see :mod:`hackforge_edge.runtime.session`)."""
    if runs < 1 or warmup < 0:
        raise UsageError(f"need runs >= 1 and warmup >= 0 (got {runs}, {warmup})")
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for r in range(runs):
        for k in range(len(fns)):
            i = (r + k) % len(fns)
            t0 = time.perf_counter()
            fns[i]()
            times[i].append((time.perf_counter() - t0) * 1e3)
    return [Timing(tuple(t), warmup) for t in times]


def time_in_blocks(fns: Sequence[Callable[[], object]], *, rounds: int = 5, runs: int = 10,
                   warmup: int = 3) -> list[Timing]:
    """Time several callables each in its own block: every round runs, per callable, ``warmup``
    untimed calls then ``runs`` timed ones; the order of the blocks rotates between rounds.

    Use this to compare engines whose thread pools keep spinning after a call (onnxruntime's
    intra-op pool by default, PyTorch's OpenMP pool): interleaving single calls would charge
    one engine's spinning threads to the next engine's call. The warm-up at the start of each
    block absorbs the hand-over; rounds spread slow drift in the machine's load over all.
    Each Timing holds ``rounds x runs`` calls (``warmup`` = untimed calls per block).
    """
    if rounds < 1 or runs < 1 or warmup < 0:
        raise UsageError(f"need rounds >= 1, runs >= 1 and warmup >= 0 (got {rounds}, {runs}, {warmup})")
    times: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):
        for k in range(len(fns)):
            i = (r + k) % len(fns)
            times[i].extend(time_calls(fns[i], warmup=warmup, runs=runs).times_ms)
    return [Timing(tuple(t), warmup) for t in times]
