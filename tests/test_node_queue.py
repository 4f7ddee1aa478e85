"""The node's ROS-free hand-over queue and running statistics, with real threads."""
from __future__ import annotations

import threading
import time

import pytest

from mvinverse_ros.runtime.latest_queue import LatestQueue
from mvinverse_ros.runtime.stats import RecentSamples


def test_full_queue_evicts_the_oldest_and_counts_it():
    queue: LatestQueue[int] = LatestQueue(2)
    assert [queue.put(i) for i in range(5)] == [0, 0, 1, 1, 1]
    assert queue.dropped == 3
    assert [queue.get(0), queue.get(0)] == [3, 4]
    assert queue.get(0.01) is None


def test_a_slow_consumer_always_gets_recent_items_and_nothing_is_lost_uncounted():
    queue: LatestQueue[int] = LatestQueue(2)
    consumed: list[int] = []
    produced = 200

    def consume():
        while (item := queue.get(timeout=2.0)) is not None:
            consumed.append(item)
            time.sleep(0.005)  # slower than the producer

    worker = threading.Thread(target=consume)
    worker.start()
    deepest = 0
    for i in range(produced):
        queue.put(i)
        deepest = max(deepest, len(queue))
    while len(queue):
        time.sleep(0.01)
    queue.close()
    worker.join(timeout=5.0)
    assert deepest <= 2
    assert consumed == sorted(consumed)
    assert consumed[-1] == produced - 1
    assert len(consumed) + queue.dropped == produced
    assert queue.dropped > 0


def test_close_wakes_a_waiting_consumer_and_clear_counts_discards():
    queue: LatestQueue[str] = LatestQueue(3)
    queue.put("a")
    queue.put("b")
    assert queue.clear() == 2 and queue.dropped == 2
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(queue.get()))
    waiter.start()
    queue.close()
    waiter.join(timeout=2.0)
    assert woke == [None]
    with pytest.raises(ValueError):
        LatestQueue(0)


def test_recent_samples_rate_mean_and_max_over_the_span():
    samples = RecentSamples(span=2.0)
    for t, value in [(0.0, 0.1), (0.5, 0.3), (1.0, 0.2), (1.5, 0.6)]:
        samples.add(t, value)
    assert samples.rate(1.5) == pytest.approx(4 / 2.0)
    assert samples.mean(1.5) == pytest.approx(0.3)
    assert samples.maximum(1.5) == pytest.approx(0.6)
    assert samples.rate(3.2) == pytest.approx(1 / 2.0)  # only t=1.5 is within 2 s of 3.2
    assert samples.mean(10.0) is None and samples.maximum(10.0) is None
