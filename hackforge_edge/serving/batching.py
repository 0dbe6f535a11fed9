"""Optional micro-batching: concurrent requests that arrive within a short window share one
``session.run``.

It pays only where the engine's per-item time falls with the batch size (GPUs, wide CPUs).
On the 2-core development CPU it did not (MobileNetV2: 6.1 ms per image at batch 1, 7.0 ms at
batch 8, docker/README.md), so it is off by default (``micro_batch_ms = 0``); measure with
``hf-edge benchmark BUNDLE --batch-sizes 1,8`` on the target before turning it on.

Requests are grouped only when every input has the same non-batch shape and dtype; a request
that cannot be grouped runs alone. Each caller gets exactly its own rows back.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future
from typing import Callable

import numpy as np

Feed = dict[str, np.ndarray]
RunFn = Callable[[Feed], tuple[list[np.ndarray], float]]   # outputs, seconds in run


def _key(feed: Feed) -> tuple:
    return tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in feed.items()))


class MicroBatcher:
    """One background thread collects requests for up to ``window_s`` (or ``max_items`` rows)
    and runs them as one batch through ``run``; :meth:`submit` returns a Future of
    ``(outputs, seconds the shared run took)``."""

    def __init__(self, run: RunFn, window_s: float, max_items: int):
        if window_s <= 0 or max_items < 2:
            raise ValueError("micro-batching needs a window > 0 and max_items >= 2")
        self._run, self.window_s, self.max_items = run, window_s, max_items
        self._q: queue.Queue[tuple[Feed, Future] | None] = queue.Queue()
        self.batch_sizes: Counter[int] = Counter()   # rows per session.run, for metadata/tests
        self._thread = threading.Thread(target=self._loop, name="hf-edge-micro-batch", daemon=True)
        self._thread.start()

    def submit(self, feed: Feed) -> Future:
        fut: Future = Future()
        self._q.put((feed, fut))
        return fut

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            pending = [first]
            rows = _rows(first[0])
            deadline = time.perf_counter() + self.window_s
            while rows < self.max_items:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    item = self._q.get(timeout=left)
                except queue.Empty:
                    break
                if item is None:
                    self._q.put(None)   # finish this batch, then stop
                    break
                pending.append(item)
                rows += _rows(item[0])
            self._dispatch(pending)

    def _dispatch(self, pending: list[tuple[Feed, Future]]) -> None:
        groups: dict[tuple, list[tuple[Feed, Future]]] = {}
        for feed, fut in pending:
            groups.setdefault(_key(feed), []).append((feed, fut))
        for items in groups.values():
            feeds = [f for f, _ in items]
            try:
                if len(items) == 1:
                    outs, run_s = self._run(feeds[0])
                    outs_per_item = [outs]
                else:
                    joined = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
                    outs, run_s = self._run(joined)
                    cuts = np.cumsum([_rows(f) for f in feeds])[:-1]
                    outs_per_item = [list(parts) for parts in zip(*(np.split(o, cuts) for o in outs))]
                self.batch_sizes[sum(_rows(f) for f in feeds)] += 1
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting request
                for _, fut in items:
                    fut.set_exception(exc)
                continue
            for (_, fut), outs in zip(items, outs_per_item):
                fut.set_result((outs, run_s))


def _rows(feed: Feed) -> int:
    return int(next(iter(feed.values())).shape[0])
