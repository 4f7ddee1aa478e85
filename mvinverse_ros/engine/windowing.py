"""Which frames the network sees together: a bounded sliding window of keyframes.

A keyframe is a frame that adds a new view: with poses, the camera moved or turned enough since
the last keyframe; without poses, enough time passed. Frames that add nothing are skipped (and
counted) so the window spans real parallax instead of near-duplicates. The network runs every
`stride` keyframes; a long silence or a clock jumping backwards (bag loop, sim reset) starts the
window afresh, because frames across such a break are not one scene sweep.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from mvinverse_ros.geometry.transforms import rotation_angle
from mvinverse_ros.types import NS_PER_SECOND, Frame, Window


@dataclass(frozen=True)
class WindowConfig:
    """How one camera's frames become windows (ranges are checked by the parameter schema).

    Attributes:
        size: frames per window.
        stride: run the network every `stride` keyframes (1..size).
        publish: 'newest' (the newest frame's maps) or 'all' (every frame of the window).
        min_translation, min_rotation_deg: motion (metres, degrees) that makes a new keyframe when poses are known.
        min_interval: seconds between keyframes when no pose is known.
        reset_gap: seconds of silence (or any backwards jump) that start the window afresh.
    """

    size: int = 8
    stride: int = 1
    publish: str = "newest"
    min_translation: float = 0.0
    min_rotation_deg: float = 0.0
    min_interval: float = 0.0
    reset_gap: float = 2.0


def breaks_sequence(last_stamp_ns: int | None, stamp_ns: int, max_gap_ns: float = math.inf) -> bool:
    """Whether a frame stamped `stamp_ns` cannot continue a stream last stamped `last_stamp_ns`.

    It cannot when time went backwards (a bag replay looping, a simulator reset) or, given
    `max_gap_ns`, when it is later by more than that (the camera was off). No last stamp: it can.
    """
    if last_stamp_ns is None:
        return False
    gap_ns = stamp_ns - last_stamp_ns
    return gap_ns < 0 or gap_ns > max_gap_ns


def pose_motion(previous: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(metres, degrees) between two 4x4 camera-to-fixed poses."""
    translation = float(np.linalg.norm(current[:3, 3] - previous[:3, 3]))
    relative = previous[:3, :3].T @ current[:3, :3]
    return translation, float(np.degrees(rotation_angle(relative)))


class WindowPolicy:
    """Turns a stream of frames from ONE camera into windows for the engine.

    Windows grow from the first keyframe up to `size` frames, then slide. The first window is
    emitted as soon as `stride` keyframes have arrived, so a robot gets maps without waiting for
    a full window.

    """

    def __init__(self, params: WindowConfig):
        self.params = params
        self._frames: deque[Frame] = deque(maxlen=params.size)
        self._last_stamp_ns: int | None = None
        self._since_run = 0
        self._next_window_id = 0
        self.counters = {
            "accepted": 0,
            "skipped_not_moved": 0,
            "skipped_too_soon": 0,
            "resets": 0,
            "windows": 0,
        }

    @property
    def frames(self) -> tuple[Frame, ...]:
        """The keyframes currently held, oldest first."""
        return tuple(self._frames)

    def reset(self) -> None:
        """Forget the held frames (counters and window ids keep counting)."""
        self._frames.clear()
        self._last_stamp_ns = None
        self._since_run = 0

    def push(self, frame: Frame) -> Window | None:
        """Offer a frame; returns the window to run when this frame completes one."""
        if breaks_sequence(self._last_stamp_ns, frame.stamp_ns, self.params.reset_gap * NS_PER_SECOND):
            self.reset()
            self.counters["resets"] += 1
        self._last_stamp_ns = frame.stamp_ns
        skip = self._skip_reason(frame)
        if skip is not None:
            self.counters[skip] += 1
            return None
        self._frames.append(frame)
        self.counters["accepted"] += 1
        self._since_run += 1
        if self._since_run < self.params.stride:
            return None
        self._since_run = 0
        return self._emit()

    def _skip_reason(self, frame: Frame) -> str | None:
        """None when `frame` is a new keyframe, else the counter naming why not."""
        if not self._frames:
            return None
        last = self._frames[-1]
        elapsed_ns = frame.stamp_ns - last.stamp_ns
        if elapsed_ns <= 0:  # a repeated stamp is never a new view (and would alias in the engine cache)
            return "skipped_too_soon"
        if frame.camera_to_fixed is not None and last.camera_to_fixed is not None:
            metres, degrees = pose_motion(last.camera_to_fixed, frame.camera_to_fixed)
            moved = metres >= self.params.min_translation or degrees >= self.params.min_rotation_deg
            return None if moved else "skipped_not_moved"
        if elapsed_ns < self.params.min_interval * NS_PER_SECOND:
            return "skipped_too_soon"
        return None

    def _emit(self) -> Window:
        frames = tuple(self._frames)
        publish = (len(frames) - 1,) if self.params.publish == "newest" else tuple(range(len(frames)))
        window = Window(window_id=self._next_window_id, frames=frames, publish=publish)
        self._next_window_id += 1
        self.counters["windows"] += 1
        return window
