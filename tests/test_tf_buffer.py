"""Rigid-transform helpers and the offline TF buffer, checked against scipy and tf2's semantics."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from mvinverse_ros.geometry.transforms import (
    ConnectivityError,
    ExtrapolationError,
    FrameNotFoundError,
    TransformBuffer,
    TransformError,
    compose,
    interpolate,
    invert,
    matrix_from_translation_quaternion,
    rotation_angle,
    transform_points,
    translation_quaternion_from_matrix,
)

S = 1_000_000_000


def random_pose(rng: np.random.Generator) -> np.ndarray:
    return matrix_from_translation_quaternion(rng.normal(size=3), Rotation.random(random_state=rng).as_quat())


def test_quaternion_order_is_xyzw_as_in_geometry_msgs():
    # 90 degrees about z: (x, y, z, w) = (0, 0, sin 45, cos 45) maps x onto y.
    T = matrix_from_translation_quaternion([1, 2, 3], [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    np.testing.assert_allclose(transform_points(T, np.array([[1.0, 0, 0]])), [[1, 3, 3]], atol=1e-12)
    t, q = translation_quaternion_from_matrix(T)
    np.testing.assert_allclose(t, [1, 2, 3])
    np.testing.assert_allclose(np.abs(q), [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)], atol=1e-12)


def test_unnormalised_quaternion_is_normalised_and_zero_rejected():
    T = matrix_from_translation_quaternion([0, 0, 0], [0, 0, 0, 2.0])
    np.testing.assert_allclose(T, np.eye(4))
    with pytest.raises(ValueError, match="quaternion"):
        matrix_from_translation_quaternion([0, 0, 0], [0, 0, 0, 0])


def test_invert_compose_and_transform_points_agree():
    rng = np.random.default_rng(0)
    A, B = random_pose(rng), random_pose(rng)
    np.testing.assert_allclose(compose(A, invert(A)), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(invert(A), np.linalg.inv(A), atol=1e-12)
    p = rng.normal(size=(5, 3))
    np.testing.assert_allclose(transform_points(compose(A, B), p), transform_points(A, transform_points(B, p)))


def test_interpolate_matches_scipy_slerp_and_linear_translation():
    rng = np.random.default_rng(1)
    A, B = random_pose(rng), random_pose(rng)
    slerp = Slerp([0, 1], Rotation.from_matrix(np.stack([A[:3, :3], B[:3, :3]])))
    for alpha in (0.0, 0.25, 0.5, 0.9, 1.0):
        T = interpolate(A, B, alpha)
        np.testing.assert_allclose(T[:3, :3], slerp([alpha]).as_matrix()[0], atol=1e-12)
        np.testing.assert_allclose(T[:3, 3], A[:3, 3] + alpha * (B[:3, 3] - A[:3, 3]))
    assert rotation_angle(compose(invert(A), interpolate(A, B, 0.5))) == pytest.approx(
        rotation_angle(compose(invert(A), B)) / 2)


@pytest.fixture()
def robot() -> tuple[TransformBuffer, dict[str, np.ndarray]]:
    """map -> odom (dynamic), odom -> base_link (dynamic), base_link -> camera_link -> optical (static)."""
    rng = np.random.default_rng(2)
    poses = {name: random_pose(rng) for name in
             ("map_odom_1", "map_odom_3", "odom_base_1", "odom_base_2", "odom_base_3", "base_cam", "cam_opt")}
    buffer = TransformBuffer(cache_seconds=10.0)
    buffer.set_transform("map", "odom", 1 * S, poses["map_odom_1"])
    buffer.set_transform("map", "odom", 3 * S, poses["map_odom_3"])
    for k in (3, 1, 2):  # out of order on purpose
        buffer.set_transform("odom", "base_link", k * S, poses[f"odom_base_{k}"])
    buffer.set_transform("base_link", "camera_link", 0, poses["base_cam"], static=True)
    buffer.set_transform("camera_link", "camera_optical", 0, poses["cam_opt"], static=True)
    return buffer, poses


def test_lookup_composes_chain_like_tf2(robot):
    buffer, poses = robot
    expected = compose(poses["odom_base_2"], poses["base_cam"], poses["cam_opt"])
    np.testing.assert_allclose(buffer.lookup("odom", "camera_optical", 2 * S), expected, atol=1e-12)
    # The opposite direction is the inverse; static-only chains ignore the stamp.
    np.testing.assert_allclose(buffer.lookup("camera_optical", "odom", 2 * S), invert(expected), atol=1e-12)
    np.testing.assert_allclose(buffer.lookup("base_link", "camera_optical", 123), poses["base_cam"] @ poses["cam_opt"])
    np.testing.assert_allclose(buffer.lookup("camera_optical", "camera_optical", 5), np.eye(4))


def test_lookup_between_siblings_goes_through_common_ancestor():
    buffer = TransformBuffer()
    rng = np.random.default_rng(3)
    A, B = random_pose(rng), random_pose(rng)
    buffer.set_transform("base", "left", 0, A, static=True)
    buffer.set_transform("base", "right", 0, B, static=True)
    np.testing.assert_allclose(buffer.lookup("left", "right", 0), invert(A) @ B, atol=1e-12)


def test_dynamic_edge_interpolates_between_stamps(robot):
    buffer, poses = robot
    T = buffer.lookup("map", "odom", 2 * S)  # halfway between the samples at 1 s and 3 s
    np.testing.assert_allclose(T, interpolate(poses["map_odom_1"], poses["map_odom_3"], 0.5), atol=1e-12)
    quarter = buffer.lookup("odom", "base_link", S + S // 4)
    np.testing.assert_allclose(quarter, interpolate(poses["odom_base_1"], poses["odom_base_2"], 0.25), atol=1e-12)


def test_stamp_zero_means_latest_common_time(robot):
    buffer, poses = robot
    buffer.set_transform("odom", "base_link", 4 * S, np.eye(4))
    np.testing.assert_allclose(buffer.lookup("map", "base_link", 0),
                               buffer.lookup("map", "base_link", 3 * S), atol=1e-12)


def test_extrapolation_is_an_error_naming_frames_and_stamps(robot):
    buffer, _ = robot
    with pytest.raises(ExtrapolationError) as err:
        buffer.lookup("map", "camera_optical", 5 * S)
    message = str(err.value)
    assert "map" in message and "camera_optical" in message and "5.000000000 s" in message
    assert "1.000000000 s .. 3.000000000 s" in message
    with pytest.raises(ExtrapolationError):
        buffer.lookup("map", "odom", S // 2)
    assert not buffer.can_transform("map", "odom", S // 2)
    assert buffer.can_transform("map", "odom", S)


def test_unknown_and_disconnected_frames(robot):
    buffer, _ = robot
    with pytest.raises(FrameNotFoundError, match="'nowhere'.*known frames: base_link"):
        buffer.lookup("map", "nowhere", S)
    buffer.set_transform("world", "marker", 0, np.eye(4), static=True)
    with pytest.raises(ConnectivityError, match="different trees"):
        buffer.lookup("map", "marker", S)
    assert issubclass(TransformError, LookupError)


def test_cache_horizon_drops_old_samples():
    buffer = TransformBuffer(cache_seconds=1.0)
    for k in range(5):
        buffer.set_transform("odom", "base_link", k * S, matrix_from_translation_quaternion([k, 0, 0], [0, 0, 0, 1]))
    np.testing.assert_allclose(buffer.lookup("odom", "base_link", 3 * S + S // 2)[0, 3], 3.5)
    with pytest.raises(ExtrapolationError):
        buffer.lookup("odom", "base_link", 2 * S)
    assert buffer.set_transform("odom", "base_link", 1 * S, np.eye(4)) is False
    assert buffer.counters["too_old"] == 1


def test_reparenting_replaces_history_and_clear_forgets(robot):
    buffer, _ = robot
    buffer.set_transform("map", "base_link", 7 * S, np.eye(4))
    np.testing.assert_allclose(buffer.lookup("map", "base_link", 7 * S), np.eye(4))
    with pytest.raises(ExtrapolationError):  # the odom -> base_link history went with the old parent
        buffer.lookup("odom", "base_link", 2 * S)
    buffer.clear()
    assert buffer.frames() == set()
    with pytest.raises(FrameNotFoundError):
        buffer.lookup("map", "odom", S)


def test_bad_input_is_rejected():
    buffer = TransformBuffer()
    with pytest.raises(ValueError, match="two different"):
        buffer.set_transform("a", "a", 0, np.eye(4))
    with pytest.raises(ValueError, match="finite 4x4"):
        buffer.set_transform("a", "b", 0, np.full((4, 4), np.nan))
