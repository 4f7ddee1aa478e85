"""Running figures the node reports on /diagnostics: event rates and latencies over a time span."""
from __future__ import annotations

import threading
from collections import deque


class RecentSamples:
    """(time, value) samples of the last `span` seconds: rate, mean and maximum over that span.

    The rate divides by the time actually observed: for the first `span` seconds of a run of samples
    (after a start or a silence longer than `span`) that is shorter than the span, which a steady
    5 Hz input would otherwise show as a rate ramping up from 0 for `span` seconds.

    Thread-safe: callbacks and the worker add while the diagnostics timer reads.
    """

    def __init__(self, span: float = 5.0) -> None:
        self.span = span
        self._samples: deque[tuple[float, float]] = deque()
        self._run_start = 0.0  # time of the first sample since the samples were last all forgotten
        self._lock = threading.Lock()

    def add(self, now: float, value: float = 0.0) -> None:
        with self._lock:
            self._forget(now)
            if not self._samples:
                self._run_start = now
            self._samples.append((now, value))
            self._forget(now)

    def _forget(self, now: float) -> None:
        while self._samples and self._samples[0][0] < now - self.span:
            self._samples.popleft()

    def rate(self, now: float) -> float:
        """Events per second over the span ending at `now`, or over the run of samples when it is younger.

        A young run counts the intervals between its samples (n - 1 of them, from its first sample to
        `now`); one sample alone gives 1 / span.
        """
        with self._lock:
            self._forget(now)
            count = len(self._samples)
            observed = now - self._run_start
            if count < 2 or observed >= self.span:
                return count / self.span
            return (count - 1) / observed

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
