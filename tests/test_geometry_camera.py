"""Depth unprojection and normal conventions on exact synthetic geometry."""
from __future__ import annotations

import numpy as np
import pytest

from mvinverse_ros.geometry.camera import project_points, rescale_pixel_indices, unproject_depth
from mvinverse_ros.geometry.normals import normalize, rotate_to_fixed, to_optical
from mvinverse_ros.geometry.transforms import matrix_from_translation_quaternion
from mvinverse_ros.types import CameraModel

K = np.array([[100.0, 0, 31.5], [0, 110.0, 23.5], [0, 0, 1]])
CAMERA = CameraModel(64, 48, K)


def test_optical_frame_axes_and_pixel_centres():
    depth = np.full((48, 64), 2.0, dtype=np.float32)
    lifted = unproject_depth(depth, CAMERA)
    assert len(lifted) == 64 * 48
    by_pixel = lifted.points.reshape(48, 64, 3)
    # Principal point at (31.5, 23.5): pixel (col 63, row 0) is right (+x) and up (-y) of the axis.
    assert by_pixel[0, 63, 0] > 0 and by_pixel[0, 63, 1] < 0
    np.testing.assert_allclose(by_pixel[0, 63], [(63 - 31.5) * 2 / 100, (0 - 23.5) * 2 / 110, 2.0], rtol=1e-6)
    np.testing.assert_array_equal(lifted.rows.reshape(48, 64)[:, 0], np.arange(48))
    np.testing.assert_array_equal(lifted.cols.reshape(48, 64)[0], np.arange(64))


def test_projection_inverts_unprojection():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 4.0, size=(48, 64)).astype(np.float32)
    lifted = unproject_depth(depth, CAMERA)
    uv, z = project_points(lifted.points, CAMERA)
    np.testing.assert_allclose(uv, np.stack([lifted.cols, lifted.rows], axis=1), atol=1e-4)
    np.testing.assert_allclose(z, depth[lifted.rows, lifted.cols])


def test_invalid_stride_and_max_depth():
    depth = np.full((48, 64), 1.0, dtype=np.float32)
    depth[0, 0] = np.nan
    depth[0, 2] = 0.0
    depth[2, 0] = -1.0
    depth[2, 2] = 9.0
    lifted = unproject_depth(depth, CAMERA, pixel_stride=2, max_depth=5.0)
    assert len(lifted) == 32 * 24 - 4
    assert set(np.unique(lifted.rows % 2)) == {0} and set(np.unique(lifted.cols % 2)) == {0}
    assert not np.any((lifted.rows == 2) & (lifted.cols == 2))
    with pytest.raises(ValueError, match="pixel_stride"):
        unproject_depth(depth, CAMERA, pixel_stride=0)
    with pytest.raises(ValueError, match="HxW"):
        unproject_depth(depth[..., None], CAMERA)


def test_camera_info_at_another_resolution_is_rescaled():
    """camera_info for 64x48 and a 128x96 depth image: same rays as the exact 128x96 calibration."""
    depth = np.full((96, 128), 3.0, dtype=np.float32)
    exact = CameraModel(128, 96, np.array([[200.0, 0, 63.5], [0, 220.0, 47.5], [0, 0, 1]]))
    lifted = unproject_depth(depth, CAMERA)
    assert len(lifted) == 96 * 128
    np.testing.assert_allclose(lifted.points, unproject_depth(depth, exact).points, atol=1e-5)


def test_rescale_pixel_indices_keeps_pixel_centres():
    rows, cols = rescale_pixel_indices(np.array([0, 1, 47]), np.array([0, 63, 5]), (48, 64), (96, 128))
    np.testing.assert_array_equal(rows, [1, 3, 95])
    np.testing.assert_array_equal(cols, [1, 127, 11])
    rows, cols = rescale_pixel_indices(rows, cols, (96, 128), (48, 64))
    np.testing.assert_array_equal(rows, [0, 1, 47])
    np.testing.assert_array_equal(cols, [0, 63, 5])


def test_normal_conventions_to_optical():
    facing_camera_gl = np.array([[0.0, 0.0, 1.0]])  # OpenGL: +z points back towards the viewer
    np.testing.assert_allclose(to_optical(facing_camera_gl, "opengl"), [[0, 0, -1]])
    np.testing.assert_allclose(to_optical(np.array([[0.0, 1.0, 0.0]]), "opengl"), [[0, -1, 0]])
    np.testing.assert_allclose(to_optical(np.array([[0.3, 0.4, -0.5]]), "opencv"), [[0.3, 0.4, -0.5]])
    with pytest.raises(ValueError, match="opencv, opengl"):
        to_optical(facing_camera_gl, "directx")


def test_normals_rotate_with_pose_but_ignore_translation():
    # Optical frame of a camera looking along the fixed frame's +x (REP 103: z fwd -> x, x right -> -y, y down -> -z).
    pose = matrix_from_translation_quaternion([5, 6, 7], [-0.5, 0.5, -0.5, 0.5])
    np.testing.assert_allclose(rotate_to_fixed(np.array([[0.0, 0, 1]]), pose), [[1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(rotate_to_fixed(np.array([[0.0, 1, 0]]), pose), [[0, 0, -1]], atol=1e-12)
    unit = normalize(np.array([[3.0, 0, 4], [0, 0, 0]]))
    np.testing.assert_allclose(unit[0], [0.6, 0, 0.8])
    assert np.all(np.isnan(unit[1]))
