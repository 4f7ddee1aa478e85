"""Backwards stamps: the node's detector and the window policy share one rule (engine.windowing.breaks_sequence)."""
from __future__ import annotations

import numpy as np

from mvinverse_ros.engine.windowing import WindowConfig, WindowPolicy, breaks_sequence
from mvinverse_ros.runtime.time_jumps import BackwardsStamps
from mvinverse_ros.types import NS_PER_SECOND, Frame

SECOND = NS_PER_SECOND


def test_breaks_sequence_backwards_always_forward_only_past_the_gap():
    assert not breaks_sequence(None, 5)
    assert not breaks_sequence(10 * SECOND, 10 * SECOND)  # a repeated stamp is no jump
    assert breaks_sequence(10 * SECOND, 10 * SECOND - 1)
    assert not breaks_sequence(10 * SECOND, 3600 * SECOND)  # no gap limit given
    assert not breaks_sequence(10 * SECOND, 12 * SECOND, max_gap_ns=2 * SECOND)
    assert breaks_sequence(10 * SECOND, 12 * SECOND + 1, max_gap_ns=2 * SECOND)


def test_a_camera_going_back_is_a_jump_and_every_camera_starts_afresh():
    stamps = BackwardsStamps()
    assert not stamps.observe("left", 100)
    assert not stamps.observe("right", 50)  # cameras are compared only with themselves
    assert not stamps.observe("left", 200)
    assert stamps.observe("left", 150)  # the bag looped
    assert not stamps.observe("right", 10)  # right's old stamp was forgotten with the jump: no second reset
    assert not stamps.observe("left", 160)  # left continues from its new stamp
    assert stamps.observe("left", 155)


def test_forget_after_a_clock_jump():
    stamps = BackwardsStamps()
    stamps.observe("cam", 1_000)
    stamps.forget()
    assert not stamps.observe("cam", 1)


def frame(stamp_s: float) -> Frame:
    return Frame(int(stamp_s * SECOND), "optical", np.zeros((4, 4, 3), np.uint8), source="cam")


def test_the_window_policy_and_the_node_detector_agree_on_backwards_stamps():
    """Replaying the same stamps: every backwards step resets the policy exactly when the detector reports a jump."""
    policy = WindowPolicy(WindowConfig(size=3, reset_gap=1000.0))
    stamps = BackwardsStamps()
    sequence = [1.0, 1.5, 2.0, 0.5, 1.0, 1.5, 0.2, 0.3]
    jumps = []
    for stamp in sequence:
        jumps.append(stamps.observe("cam", frame(stamp).stamp_ns))
        policy.push(frame(stamp))
    assert jumps == [False, False, False, True, False, False, True, False]
    assert policy.counters["resets"] == sum(jumps)
