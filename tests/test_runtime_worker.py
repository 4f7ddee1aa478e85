"""The node's inference worker without ROS: real threads, a real newest-wins queue."""
from __future__ import annotations

import threading
import time

import pytest

from mvinverse_ros.runtime.worker import Worker

DEADLINE = 10.0  # s; only a broken worker ever waits this long


def wait_for(condition, deadline: float = DEADLINE) -> bool:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.001)
    return True


class Recorder:
    """A handler that records what it ran and can be held inside an item until released."""

    def __init__(self, fail_on=()) -> None:
        self.handled: list[object] = []
        self.failed: list[tuple[object, Exception]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_on = set(fail_on)

    def handle(self, item) -> None:
        self.gate.wait()
        if item in self.fail_on:
            raise ValueError(f"bad item {item}")
        self.handled.append(item)

    def on_error(self, item, err: Exception) -> None:
        self.failed.append((item, err))


def test_under_a_flood_the_newest_items_win_and_the_rest_are_counted():
    recorder = Recorder()
    worker: Worker[int] = Worker(recorder.handle, recorder.on_error, name="test-worker")
    worker.start(queue_size=2)
    try:
        recorder.gate.clear()
        worker.put(0)
        assert wait_for(lambda: worker.busy)  # item 0 is in hand, held at the gate
        evicted = [worker.put(i) for i in range(1, 100)]
        assert worker.queued == 2
        assert sum(evicted) == worker.dropped == 97
        recorder.gate.set()
        assert wait_for(lambda: recorder.handled == [0, 98, 99])
        assert wait_for(lambda: not worker.busy and worker.queued == 0)
    finally:
        worker.stop()
    assert recorder.failed == [] and worker.failures == 0


def test_a_raising_item_is_counted_reported_and_the_worker_keeps_serving():
    recorder = Recorder(fail_on={"bad"})
    worker: Worker[str] = Worker(recorder.handle, recorder.on_error)
    worker.start(queue_size=10)
    try:
        for item in ("first", "bad", "after", "bad", "last"):
            worker.put(item)
        assert wait_for(lambda: recorder.handled == ["first", "after", "last"])
        assert worker.failures == 2 and worker.alive
        assert [(item, type(err)) for item, err in recorder.failed] == [("bad", ValueError)] * 2
        assert "bad item bad" in str(recorder.failed[0][1])
    finally:
        worker.stop()


def test_a_reporter_that_raises_does_not_stop_the_worker_either(caplog):
    handled = []

    def handle(item: int) -> None:
        if item == 0:
            raise RuntimeError("window failed")
        handled.append(item)

    def broken_reporter(item, err):
        raise KeyError("logger gone")

    worker: Worker[int] = Worker(handle, broken_reporter, name="reporting")
    worker.start(queue_size=4)
    try:
        worker.put(0)
        worker.put(1)
        assert wait_for(lambda: handled == [1])
        assert worker.failures == 1 and worker.alive
    finally:
        worker.stop()
    assert "reporting: reporting a failure failed" in caplog.text


def test_without_a_reporter_failures_go_to_the_log(caplog):
    worker: Worker[int] = Worker(lambda item: 1 / item, name="logging")
    worker.start(queue_size=1)
    try:
        worker.put(0)
        assert wait_for(lambda: worker.failures == 1)
    finally:
        worker.stop()
    assert "logging: an item failed: ZeroDivisionError" in caplog.text


def test_stop_waits_for_the_item_in_hand_discards_the_waiting_ones_and_the_worker_restarts():
    recorder = Recorder()
    worker: Worker[int] = Worker(recorder.handle, recorder.on_error)
    worker.start(queue_size=3)
    recorder.gate.clear()
    worker.put(1)
    assert wait_for(lambda: worker.busy)
    worker.put(2)
    worker.put(3)
    stopper = threading.Thread(target=worker.stop)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive(), "stop returned while an item was still being handled"
    recorder.gate.set()
    stopper.join(DEADLINE)
    assert not stopper.is_alive()
    assert recorder.handled == [1]
    assert not worker.running and not worker.alive and not worker.busy and worker.queued == 0
    assert worker.dropped == 2  # the two waiting items, discarded by stop
    with pytest.raises(RuntimeError, match="not running"):
        worker.put(4)
    worker.stop()  # stopping a stopped worker does nothing

    worker.start(queue_size=1)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            worker.start(queue_size=1)
        worker.put(5)
        assert wait_for(lambda: recorder.handled == [1, 5])
        assert worker.dropped == 2  # counted over the worker's lifetime, across restarts
    finally:
        worker.stop()


def test_clear_discards_waiting_items_but_not_the_one_in_hand():
    recorder = Recorder()
    worker: Worker[int] = Worker(recorder.handle, recorder.on_error)
    assert worker.clear() == 0  # nothing to clear before start
    worker.start(queue_size=5)
    try:
        recorder.gate.clear()
        worker.put(1)
        assert wait_for(lambda: worker.busy)
        for item in (2, 3, 4):
            worker.put(item)
        assert worker.clear() == 3 and worker.queued == 0 and worker.dropped == 3
        worker.put(5)
        recorder.gate.set()
        assert wait_for(lambda: recorder.handled == [1, 5])
    finally:
        worker.stop()
