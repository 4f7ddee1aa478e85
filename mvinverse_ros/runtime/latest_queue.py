"""A bounded hand-over queue between subscription callbacks and the inference worker.

When the worker falls behind, the oldest waiting items are dropped (and counted) so that what
it runs next is always recent: latency stays bounded by `maxsize` items however fast input comes.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestQueue(Generic[T]):
    """Thread-safe FIFO of at most `maxsize` items; `put` on a full queue evicts the oldest.

    Args:
        maxsize: items kept waiting (>= 1).

    Attributes:
        dropped: items evicted by `put` or discarded by `clear` since creation.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"queue size must be >= 1, got {maxsize}")
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._ready = threading.Condition()
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)

    def put(self, item: T) -> int:
        """Enqueue `item`; returns how many older items were evicted to make room."""
        with self._ready:
            evicted = 0
            while len(self._items) >= self._maxsize:
                self._items.popleft()
                evicted += 1
            self._items.append(item)
            self.dropped += evicted
            self._ready.notify()
            return evicted

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest waiting item, or None after `timeout` seconds or once closed."""
        with self._ready:
            self._ready.wait_for(lambda: self._items or self._closed, timeout)
            if self._closed or not self._items:
                return None
            return self._items.popleft()

    def clear(self) -> int:
        """Discard every waiting item (time jump, deactivation); returns how many."""
        with self._ready:
            discarded = len(self._items)
            self._items.clear()
            self.dropped += discarded
            return discarded

    def close(self) -> None:
        """Wake every waiting `get` with None; later `get` calls return None at once."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
