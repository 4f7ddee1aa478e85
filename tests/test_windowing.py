"""WindowPolicy: keyframe selection, stride, resets and publishing, on synthetic and real 7-Scenes poses."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mvinverse_ros.engine.windowing import WindowPolicy, pose_motion
from mvinverse_ros.params import ParameterError, load_params

SECOND = 1_000_000_000
PIXEL = np.zeros((2, 2, 3), np.uint8)


def window_params(**changes):
    return dataclasses.replace(load_params().window, **changes)


def pose(x: float = 0.0, yaw_deg: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    T[0, 3] = x
    return T


def frame(t: float, camera_to_fixed: np.ndarray | None = None, source: str = "camera"):
    from mvinverse_ros.types import Frame

    return Frame(stamp_ns=int(round(t * SECOND)), frame_id="cam", image=PIXEL, camera_to_fixed=camera_to_fixed,
                 source=source)


def stamps_ms(window) -> list[int]:
    return [f.stamp_ns // 1_000_000 for f in window.frames]


def test_window_grows_then_slides_and_publishes_newest():
    policy = WindowPolicy(window_params(size=3, stride=1, publish="newest", min_translation=0.05))
    windows = [policy.push(frame(0.1 * i, pose(x=0.1 * i))) for i in range(5)]
    assert [stamps_ms(w) for w in windows] == [[0], [0, 100], [0, 100, 200], [100, 200, 300], [200, 300, 400]]
    assert [w.publish for w in windows] == [(0,), (1,), (2,), (2,), (2,)]
    assert [w.window_id for w in windows] == [0, 1, 2, 3, 4]
    assert policy.counters == {"accepted": 5, "skipped_not_moved": 0, "skipped_too_soon": 0, "resets": 0, "windows": 5}


def test_publish_all_lists_every_frame():
    policy = WindowPolicy(window_params(size=2, stride=2, publish="all"))
    assert policy.push(frame(0.0)) is None
    window = policy.push(frame(1.0))
    assert window.publish == (0, 1)


def test_stride_runs_every_kth_keyframe():
    policy = WindowPolicy(window_params(size=4, stride=2, min_interval=0.0))
    emitted = [policy.push(frame(0.1 * i)) is not None for i in range(8)]
    assert emitted == [False, True] * 4
    assert policy.counters["windows"] == 4


def test_pose_keyframes_need_translation_or_rotation():
    policy = WindowPolicy(window_params(size=4, min_translation=0.05, min_rotation_deg=5.0, min_interval=0.0))
    assert policy.push(frame(0.0, pose())) is not None
    assert policy.push(frame(0.1, pose(x=0.03))) is None  # 3 cm, 0 deg
    assert policy.push(frame(0.2, pose(x=0.049))) is None  # still measured from the keyframe at 0
    assert policy.push(frame(0.3, pose(x=0.06))) is not None  # 6 cm
    assert policy.push(frame(0.4, pose(x=0.06, yaw_deg=3.0))) is None
    assert policy.push(frame(0.5, pose(x=0.06, yaw_deg=5.5))) is not None  # turned in place
    assert policy.counters["skipped_not_moved"] == 3
    assert policy.counters["skipped_too_soon"] == 0
    assert stamps_ms(policy.push(frame(0.6, pose(x=0.2)))) == [0, 300, 500, 600]


def test_without_poses_min_interval_spaces_keyframes():
    policy = WindowPolicy(window_params(size=4, min_interval=0.1))
    accepted = [policy.push(frame(0.05 * i)) is not None for i in range(6)]  # 20 Hz stream
    assert accepted == [True, False, True, False, True, False]
    assert policy.counters["skipped_too_soon"] == 3


def test_repeated_stamp_is_skipped_even_when_moved():
    policy = WindowPolicy(window_params(min_interval=0.0))
    policy.push(frame(1.0, pose()))
    assert policy.push(frame(1.0, pose(x=1.0))) is None
    assert policy.counters["skipped_too_soon"] == 1


def test_gap_resets_the_window():
    policy = WindowPolicy(window_params(size=4, reset_gap=2.0, min_interval=0.0))
    for t in (0.0, 0.5, 1.0):
        policy.push(frame(t))
    assert len(policy.push(frame(2.9)).frames) == 4  # 1.9 s gap: no reset
    window = policy.push(frame(5.0))  # 2.1 s gap
    assert stamps_ms(window) == [5000]
    assert policy.counters["resets"] == 1


def test_backwards_clock_resets_the_window():
    policy = WindowPolicy(window_params(size=4, min_interval=0.0))
    for t in (10.0, 10.1, 10.2):
        policy.push(frame(t))
    window = policy.push(frame(3.0))  # bag looped
    assert stamps_ms(window) == [3000]
    assert policy.counters["resets"] == 1
    assert policy.counters["accepted"] == 4


def test_reset_forgets_stride_progress():
    policy = WindowPolicy(window_params(size=4, stride=2, min_interval=0.0))
    policy.push(frame(0.0))
    policy.reset()
    assert policy.push(frame(0.1)) is None
    assert policy.push(frame(0.2)) is not None


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"size": 1}, "window.size"),
        ({"size": 17}, "window.size"),
        ({"size": 4, "stride": 5}, "window.stride"),
        ({"stride": 0}, "window.stride"),
        ({"publish": "oldest"}, "window.publish"),
        ({"min_interval": -1.0}, "window.min_interval"),
    ],
)
def test_bad_parameters_name_the_parameter(changes, message):
    with pytest.raises(ParameterError, match=message):
        load_params(overrides={f"window.{name}": value for name, value in changes.items()})


def test_pose_motion_matches_known_rotation():
    metres, degrees = pose_motion(pose(), pose(x=0.3, yaw_deg=30.0))
    assert metres == pytest.approx(0.3)
    assert degrees == pytest.approx(30.0)


def test_real_sequence_keyframes_keep_the_motion_thresholds(sevenscenes_dir: Path):
    """On the real hand-held 7-Scenes trajectory every keyframe moved enough, every skip did not."""
    params = window_params()
    policy = WindowPolicy(params)
    pose_files = sorted(sevenscenes_dir.glob("frame-*.pose.txt"))
    assert len(pose_files) == 100
    keyframe = None
    for i, path in enumerate(pose_files):
        T = np.loadtxt(path)
        window = policy.push(frame(0.1 * i, T))  # every 3rd frame of 30 Hz = 10 Hz
        if keyframe is not None:
            metres, degrees = pose_motion(keyframe, T)
            moved = metres >= params.min_translation or degrees >= params.min_rotation_deg
            assert (window is not None) == moved, path.name
        if window is not None:
            keyframe = T
            assert len(window.frames) <= params.size
            assert window.frames[-1].camera_to_fixed is T
    counters = policy.counters
    assert counters["accepted"] + counters["skipped_not_moved"] == 100
    assert 10 < counters["accepted"] < 100  # the camera really moves, but not 5 cm every frame
    assert counters["resets"] == 0
    assert counters["windows"] == counters["accepted"] // params.stride
