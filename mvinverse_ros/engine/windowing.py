"""Which frames the network sees together: a bounded sliding window of keyframes.

A keyframe is a frame that adds a new view: with poses, the camera moved or turned enough since
the last keyframe; without poses, enough time passed. Frames that add nothing are skipped (and
counted) so the window spans real parallax instead of near-duplicates. The network runs every
`stride` keyframes; a long silence or a clock jumping backwards (bag loop, sim reset) starts the
window afresh, because frames across such a break are not one scene sweep.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from mvinverse_ros.params import ParameterError, WindowParams
from mvinverse_ros.types import Frame, Window

MIN_WINDOW, MAX_WINDOW = 2, 16
PUBLISH_MODES = ("newest", "all")


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle of a 3x3 rotation matrix in degrees (clipped so round-off never gives NaN)."""
    cos = (np.trace(rotation) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def pose_motion(previous: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(metres, degrees) between two 4x4 camera-to-fixed poses."""
    translation = float(np.linalg.norm(current[:3, 3] - previous[:3, 3]))
    relative = previous[:3, :3].T @ current[:3, :3]
    return translation, rotation_angle_deg(relative)


class WindowPolicy:
    """Turns a stream of frames from ONE camera into windows for the engine.

    Windows grow from the first keyframe up to `size` frames, then slide. The first window is
    emitted as soon as `stride` keyframes have arrived, so a robot gets maps without waiting for
    a full window.

    Raises:
        ParameterError: on window parameters outside their ranges.
    """

    def __init__(self, params: WindowParams):
        if not MIN_WINDOW <= params.size <= MAX_WINDOW:
            raise ParameterError(f"window.size must be in {MIN_WINDOW}..{MAX_WINDOW}, got {params.size}")
        if not 1 <= params.stride <= params.size:
            raise ParameterError(
                f"window.stride must be in 1..window.size ({params.size}), got {params.stride}: "
                "a larger stride would drop keyframes that no window ever sees"
            )
        if params.publish not in PUBLISH_MODES:
            raise ParameterError(f"window.publish must be one of {PUBLISH_MODES}, got {params.publish!r}")
        for name in ("min_translation", "min_rotation_deg", "min_interval", "reset_gap"):
            if getattr(params, name) < 0:
                raise ParameterError(f"window.{name} must not be negative, got {getattr(params, name)}")
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
        if self._breaks_sequence(frame.stamp_ns):
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

    def _breaks_sequence(self, stamp_ns: int) -> bool:
        if self._last_stamp_ns is None:
            return False
        gap_ns = stamp_ns - self._last_stamp_ns
        return gap_ns < 0 or gap_ns > self.params.reset_gap * 1e9

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
        if elapsed_ns < self.params.min_interval * 1e9:
            return "skipped_too_soon"
        return None

    def _emit(self) -> Window:
        frames = tuple(self._frames)
        publish = (len(frames) - 1,) if self.params.publish == "newest" else tuple(range(len(frames)))
        window = Window(window_id=self._next_window_id, frames=frames, publish=publish)
        self._next_window_id += 1
        self.counters["windows"] += 1
        return window
