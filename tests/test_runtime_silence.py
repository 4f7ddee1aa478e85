"""When the node explains that no synchronized frame arrives (runtime.diagnostics.SilenceWatch), on steady time."""
from __future__ import annotations

from mvinverse_ros.runtime.diagnostics import SilenceWatch


def test_no_hint_before_activation_or_after_deactivation():
    watch = SilenceWatch(5.0)
    assert not watch.due(100.0)
    watch.start(100.0)
    watch.stop()
    assert not watch.due(200.0)


def test_nothing_received_gives_a_hint_after_the_patience():
    watch = SilenceWatch(5.0)
    watch.start(100.0)
    assert not watch.due(104.9)
    assert watch.due(105.0)


def test_a_replay_starting_late_gets_the_patience_from_its_first_message():
    watch = SilenceWatch(5.0)
    watch.start(100.0)
    watch.message(130.0)  # the bag starts 30 s after activation: the synchronizer has not paired yet
    assert not watch.due(130.1)
    assert not watch.due(134.9)
    assert watch.due(135.0)  # 5 s of messages that never pair: now the hint is due


def test_no_hint_once_a_frame_paired_until_the_next_activation():
    watch = SilenceWatch(5.0)
    watch.start(100.0)
    watch.message(100.5)
    watch.frame()
    assert not watch.due(500.0)
    watch.start(600.0)
    assert watch.due(605.0)
