"""Pairing of one camera's image, camera_info and depth by header stamp, offline.

Same rule as message_filters' ApproximateTimeSynchronizer (Python flavour): every stream keeps
its newest `queue_size` messages keyed by stamp; a newly arrived message is matched with the
closest stamps of the other streams, and the first combination whose stamps all lie within
`slop` is emitted and removed from the queues. A message that leaves a queue unmatched (pushed
out by newer ones, or still waiting at the end of the bag) is counted as unpaired, per stream.
"""
from __future__ import annotations

import itertools
from collections import Counter
from typing import Any, Sequence

from mvinverse_ros.conversions.factory import stamp_to_ns


class ApproximateSynchronizer:
    """Emits one message per stream whose stamps differ by less than `slop_ns`.

    Args:
        streams: names of the streams, e.g. ('image', 'camera_info', 'depth'); the emitted tuple
            follows this order.
        queue_size: messages kept per stream while waiting for partners.
        slop_ns: largest stamp spread of an emitted set, nanoseconds.

    Attributes:
        unpaired: stream name -> messages dropped without a partner set.
    """

    def __init__(self, streams: Sequence[str], queue_size: int, slop_ns: int) -> None:
        if queue_size < 1:
            raise ValueError(f"sync queue size must be at least 1, got {queue_size}")
        self.streams = tuple(streams)
        self.queue_size = queue_size
        self.slop_ns = slop_ns
        self._queues: dict[str, dict[int, Any]] = {name: {} for name in self.streams}
        self.unpaired: Counter[str] = Counter()

    def add(self, stream: str, message: Any) -> tuple[Any, ...] | None:
        """Queue `message` of `stream`; returns the matched set (in `streams` order) or None."""
        stamp = stamp_to_ns(message.header.stamp)
        queue = self._queues[stream]
        if stamp in queue:
            self.unpaired[stream] += 1  # a repeated stamp replaces the waiting message
        queue[stamp] = message
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.unpaired[stream] += 1
        candidates = []
        for other in self.streams:
            if other == stream:
                candidates.append([stamp])
                continue
            near = sorted((abs(s - stamp), s) for s in self._queues[other] if abs(s - stamp) <= self.slop_ns)
            if not near:
                return None
            candidates.append([s for _, s in near])
        for stamps in itertools.product(*candidates):
            if max(stamps) - min(stamps) <= self.slop_ns:
                return tuple(self._queues[name].pop(s) for name, s in zip(self.streams, stamps))
        return None

    def flush(self) -> None:
        """End of input: whatever still waits will never be paired."""
        for name, queue in self._queues.items():
            if queue:
                self.unpaired[name] += len(queue)
                queue.clear()
