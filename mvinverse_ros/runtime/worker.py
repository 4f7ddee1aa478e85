"""The inference worker: one thread that runs the newest waiting windows, one at a time.

Subscription callbacks must return at once, so windows are handed over through a LatestQueue
and run here. A window that raises is counted and reported, never fatal: the thread keeps serving
later windows until `stop`.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Generic, TypeVar

from mvinverse_ros.runtime.latest_queue import LatestQueue

LOG = logging.getLogger(__name__)

T = TypeVar("T")


class Worker(Generic[T]):
    """A restartable thread calling `handle(item)` for items `put` to its bounded newest-wins queue.

    Args:
        handle: runs one item (a window: the network, then publishing).
        on_error: told about an item whose `handle` raised (for logging); by default the
            exception goes to this module's logger.
        name: the thread's name.

    Attributes:
        failures: items whose `handle` raised, over the worker's lifetime.
    """

    def __init__(self, handle: Callable[[T], None], on_error: Callable[[T, Exception], None] | None = None,
                 name: str = "worker") -> None:
        self._handle = handle
        self._on_error = on_error
        self._name = name
        self._queue: LatestQueue[T] | None = None
        self._thread: threading.Thread | None = None
        self._busy = threading.Event()
        self._dropped_before = 0
        self.failures = 0

    def start(self, queue_size: int) -> None:
        """Start the thread with a queue of `queue_size` waiting items.

        Raises:
            RuntimeError: the worker is already running.
            ValueError: queue_size < 1.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running")
        self._queue = LatestQueue(queue_size)
        self._thread = threading.Thread(target=self._serve, args=(self._queue,), name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Discard the waiting items (counted as dropped) and wait for the one in hand to finish."""
        if self._thread is None:
            return
        self._queue.close()
        self._thread.join()
        self._queue.clear()
        self._dropped_before += self._queue.dropped
        self._queue = self._thread = None

    def put(self, item: T) -> int:
        """Hand `item` over; returns how many older waiting items it evicted.

        Raises:
            RuntimeError: the worker is not running.
        """
        queue = self._queue
        if queue is None:
            raise RuntimeError(f"{self._name} is not running")
        return queue.put(item)

    def clear(self) -> int:
        """Discard the waiting items (a time jump made them stale); returns how many."""
        queue = self._queue
        return queue.clear() if queue is not None else 0

    @property
    def running(self) -> bool:
        """Started and not stopped (the thread may still have died: see `alive`)."""
        return self._thread is not None

    @property
    def alive(self) -> bool:
        """Whether the thread is running now."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def busy(self) -> bool:
        """Whether an item is being handled right now."""
        return self._busy.is_set()

    @property
    def queued(self) -> int:
        """Items waiting (never more than the queue size)."""
        queue = self._queue
        return len(queue) if queue is not None else 0

    @property
    def dropped(self) -> int:
        """Items evicted because the worker was behind, or discarded by `clear` and `stop`, over its lifetime."""
        queue = self._queue
        return self._dropped_before + (queue.dropped if queue is not None else 0)

    def _serve(self, queue: LatestQueue[T]) -> None:
        while (item := queue.get()) is not None:
            self._busy.set()
            try:
                self._handle(item)
            except Exception as err:  # one bad item must not stop the service
                self.failures += 1
                self._report(item, err)
            finally:
                self._busy.clear()

    def _report(self, item: T, err: Exception) -> None:
        if self._on_error is None:
            LOG.error("%s: an item failed: %s: %s", self._name, type(err).__name__, err)
            return
        try:
            self._on_error(item, err)
        except Exception:  # a failing reporter must not stop the service either
            LOG.exception("%s: reporting a failure failed", self._name)
