"""Requests in flight, adapted to how many the server really works on at once.

With a fixed limit of 8 and a server that computes one answer at a time, seven requests wait
in the server's queue; under a client timeout the server keeps computing answers the client
has abandoned. `AdaptiveLimit` estimates the server's parallelism from latencies (Little's
law: a request that started with k in flight and took L seconds, against the fastest
latency seen L0, implies about k * L0 / L requests being served at once) and keeps the limit
near that estimate: down to 1 for a serial server. While answers come back about as fast as
the fastest (L < 1.5 L0: nothing queued) it grows by one every few completions, up to
`max_limit`.
"""

from __future__ import annotations

import math
import threading
import time


class AdaptiveLimit:
    """A counting limit whose size follows the server's estimated parallelism.

    `start`: the initial limit (default min(4, max_limit)); `adaptive=False` keeps the limit
    fixed at `max_limit` (the old behaviour, for comparison). Use as
    ``with limit.slot() as s: ...; s.done(latency_s)``.
    """

    GROW_AFTER = 4  # completions in a row that show headroom before the limit grows by one
    NO_QUEUE = 1.5  # latency under this multiple of the fastest seen: nothing was queued

    def __init__(self, max_limit: int, *, adaptive: bool = True, start: int | None = None) -> None:
        self.max_limit = int(max_limit)
        self.adaptive = adaptive
        self.limit = self.max_limit if not adaptive else max(1, min(start or 4, self.max_limit))
        self.in_flight = 0
        self.min_latency: float | None = None
        self.parallelism: float | None = None  # EWMA of the estimate
        self.history: list[int] = [self.limit]  # limits taken (for tests and benchmarks)
        self._headroom = 0
        self._cond = threading.Condition()

    def acquire(self) -> int:
        """Wait for a free slot; returns how many were in flight when this one started."""
        with self._cond:
            while self.in_flight >= self.limit:
                self._cond.wait(timeout=1.0)
            self.in_flight += 1
            return self.in_flight

    def release(self, started_with: int, latency: float | None) -> None:
        """Free a slot; `latency` (s) of a successful request updates the estimate."""
        with self._cond:
            self.in_flight -= 1
            if self.adaptive and latency and latency > 0:
                self._update(started_with, latency)
            self._cond.notify_all()

    def _update(self, k: int, latency: float) -> None:
        self.min_latency = latency if self.min_latency is None else min(self.min_latency, latency)
        ratio = latency / self.min_latency  # ~1: served at once; ~k: queued behind the others
        est = k / ratio
        self.parallelism = est if self.parallelism is None else 0.7 * self.parallelism + 0.3 * est
        if ratio < self.NO_QUEUE:  # answered about as fast as ever: room for one more
            self._headroom += 1
            if self._headroom >= self.GROW_AFTER and self.limit < self.max_limit:
                self.limit += 1
                self._headroom = 0
        else:
            self._headroom = 0
            new = max(1, min(self.max_limit, math.floor(self.parallelism + 0.5)))
            if new < self.limit:
                self.limit = new
        if self.history[-1] != self.limit:
            self.history.append(self.limit)

    def slot(self) -> _Slot:
        return _Slot(self)


class _Slot:
    def __init__(self, lim: AdaptiveLimit) -> None:
        self.lim = lim
        self.k = 0
        self.latency: float | None = None
        self.t0 = 0.0

    def __enter__(self) -> _Slot:
        self.k = self.lim.acquire()
        self.t0 = time.perf_counter()
        return self

    def ok(self, tokens_out: int | None = None) -> None:
        """Mark the request as answered; its latency feeds the estimate.

        With `tokens_out`, the latency per generated token is used, so answers of different
        lengths compare (a long caption is not mistaken for a queued one).
        """
        self.latency = (time.perf_counter() - self.t0) / max(1, tokens_out or 1)

    def __exit__(self, *exc: object) -> None:
        self.lim.release(self.k, self.latency)
