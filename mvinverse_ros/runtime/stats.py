"""Running figures the node reports on /diagnostics: event rates and latencies over a time span."""
from __future__ import annotations

import threading
from collections import deque


class RecentSamples:
    """(time, value) samples of the last `span` seconds: rate, mean and maximum over that span.

    Thread-safe: callbacks and the worker add while the diagnostics timer reads.
    """

    def __init__(self, span: float = 5.0) -> None:
        self.span = span
        self._samples: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def add(self, now: float, value: float = 0.0) -> None:
        with self._lock:
            self._samples.append((now, value))
            self._forget(now)

    def _forget(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self.span:
            self._samples.popleft()

    def rate(self, now: float) -> float:
        """Events per second over the span ending at `now`."""
        with self._lock:
            self._forget(now)
            return len(self._samples) / self.span

    def mean(self, now: float) -> float | None:
        """Mean value over the span, None without samples."""
        with self._lock:
            self._forget(now)
            return sum(v for _, v in self._samples) / len(self._samples) if self._samples else None

    def maximum(self, now: float) -> float | None:
        """Largest value over the span, None without samples."""
        with self._lock:
            self._forget(now)
            return max(v for _, v in self._samples) if self._samples else None
