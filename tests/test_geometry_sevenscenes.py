"""Unprojection, poses and fusion on real 7-Scenes RGB-D frames: two views of the kitchen must agree."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial import cKDTree

from mvinverse_ros.geometry.camera import project_points, unproject_depth
from mvinverse_ros.geometry.fusion import VoxelMap, surface_points
from mvinverse_ros.geometry.normals import to_optical
from mvinverse_ros.geometry.transforms import invert, rotation_angle, transform_points
from mvinverse_ros.params import load_params
from mvinverse_ros.types import CameraModel, Frame, MaterialMaps

FUSION = load_params().fusion


def camera(sevenscenes_dir: Path) -> CameraModel:
    return CameraModel(640, 480, np.loadtxt(sevenscenes_dir / "camera-intrinsics.txt"))


def depth_normals(depth: np.ndarray, cam: CameraModel, reach: int = 6) -> np.ndarray:
    """Optical-frame normals from central differences of the back-projected depth, facing the camera."""
    rows, cols = np.mgrid[0:depth.shape[0], 0:depth.shape[1]]
    P = np.stack([(cols - cam.K[0, 2]) * depth / cam.K[0, 0], (rows - cam.K[1, 2]) * depth / cam.K[1, 1], depth], -1)
    du, dv = np.full_like(P, np.nan), np.full_like(P, np.nan)
    du[:, reach:-reach] = P[:, 2 * reach:] - P[:, :-2 * reach]
    dv[reach:-reach] = P[2 * reach:] - P[:-2 * reach]
    n = np.cross(du, dv)
    with np.errstate(invalid="ignore"):
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        n[np.sum(n * P, axis=-1) > 0] *= -1
    return n.astype(np.float32)


def load_frame(sevenscenes_dir: Path, index: int) -> tuple[Frame, MaterialMaps]:
    """A real frame, with 'maps' whose albedo is the photo and whose normals come from the depth."""
    stem = sevenscenes_dir / f"frame-{index:06d}"
    millimetres = cv2.imread(str(stem) + ".depth.png", cv2.IMREAD_UNCHANGED)
    depth = np.where(millimetres > 0, millimetres / 1000.0, np.nan).astype(np.float32)
    rgb = cv2.cvtColor(cv2.imread(str(stem) + ".color.jpg"), cv2.COLOR_BGR2RGB)
    cam = camera(sevenscenes_dir)
    frame = Frame(index * 33_333_333, "kinect_optical", rgb, cam, depth, np.loadtxt(str(stem) + ".pose.txt"))
    zeros = np.zeros(depth.shape, np.float32)
    normal = depth_normals(depth, cam)
    maps = MaterialMaps(rgb.astype(np.float32) / 255, zeros + 0.5, zeros, normal, np.ones_like(normal))
    return frame, maps


def depth_disagreement(sevenscenes_dir: Path, a: int, b: int, pose_a: np.ndarray) -> np.ndarray:
    """|depth predicted for view b from view a's points - depth b measured| over the overlap."""
    frame_a, _ = load_frame(sevenscenes_dir, a)
    frame_b, _ = load_frame(sevenscenes_dir, b)
    lifted = unproject_depth(frame_a.depth, frame_a.camera, pixel_stride=4, max_depth=FUSION.max_depth)
    in_b = transform_points(invert(frame_b.camera_to_fixed), transform_points(pose_a, lifted.points))
    uv, z = project_points(in_b, frame_b.camera)
    u, v = np.round(uv[:, 0]), np.round(uv[:, 1])
    inside = (z > 0) & (u >= 0) & (u < 640) & (v >= 0) & (v < 480)
    measured = frame_b.depth[v[inside].astype(int), u[inside].astype(int)]
    diff = np.abs(measured - z[inside])
    return diff[np.isfinite(diff)]


def test_two_views_of_the_same_surfaces_agree_within_centimetres(sevenscenes_dir):
    """Frames 0 and 90 (0.47 m and 14 degrees apart): optical frame, K and camera-to-world poses agree."""
    pose_0 = np.loadtxt(sevenscenes_dir / "frame-000000.pose.txt")
    pose_90 = np.loadtxt(sevenscenes_dir / "frame-000090.pose.txt")
    assert np.linalg.norm(pose_0[:3, 3] - pose_90[:3, 3]) > 0.4
    assert np.degrees(rotation_angle(invert(pose_0) @ pose_90)) > 10
    diff = depth_disagreement(sevenscenes_dir, 0, 90, pose_0)
    assert diff.size > 5000
    assert np.median(diff) < 0.02  # measured 0.015 m
    # The check is sharp: frame 30's pose (a second later) instead of frame 0's is far off.
    wrong_pose = np.loadtxt(sevenscenes_dir / "frame-000030.pose.txt")
    assert np.median(depth_disagreement(sevenscenes_dir, 0, 90, wrong_pose)) > 0.08


@pytest.fixture(scope="module")
def fused_pair(sevenscenes_dir):
    (frame_a, maps_a), (frame_b, maps_b) = load_frame(sevenscenes_dir, 0), load_frame(sevenscenes_dir, 90)
    pairs = ((frame_a, maps_a), (frame_b, maps_b))
    return tuple((frame, surface_points(frame, maps, FUSION.pixel_stride, FUSION.max_depth)) for frame, maps in pairs)


def test_surface_points_of_two_frames_land_on_each_other(fused_pair):
    (_, a), (_, b) = fused_pair
    distance, nearest = cKDTree(b.points).query(a.points, distance_upper_bound=0.1)
    overlap = np.isfinite(distance)
    assert overlap.mean() > 0.4
    assert np.median(distance[overlap]) < 0.02
    # Normals rotated into the fixed frame agree between views turned 14 degrees apart.
    dots = np.sum(a.normal[overlap] * b.normal[nearest[overlap]], axis=1)
    assert np.nanmedian(dots) > 0.95


def test_fixed_frame_normals_face_the_camera_only_in_the_optical_frame(fused_pair, sevenscenes_dir):
    (frame, points), _ = fused_pair
    towards_camera = frame.camera_to_fixed[:3, 3] - points.points
    known = np.all(np.isfinite(points.normal), axis=1)
    assert known.mean() > 0.8
    assert np.mean(np.sum(points.normal * towards_camera, axis=1)[known] > 0) > 0.99
    _, maps = load_frame(sevenscenes_dir, 0)
    opengl_normals = to_optical(maps.normal, "opengl")  # (x, -y, -z): its own inverse
    unconverted = surface_points(frame, replace(maps, normal=opengl_normals), FUSION.pixel_stride,
                                 FUSION.max_depth)
    assert np.mean(np.sum(unconverted.normal * towards_camera, axis=1)[known] > 0) < 0.5


def test_voxel_map_of_two_frames_shares_voxels_and_keeps_materials(fused_pair):
    (_, a), (_, b) = fused_pair
    voxels = VoxelMap(FUSION.voxel_size, FUSION.extent, FUSION.max_points)
    touched_a, touched_b = voxels.integrate(a), voxels.integrate(b)
    cloud = voxels.cloud()
    shared = cloud.view_count == 2
    assert len(cloud) == touched_a + touched_b - shared.sum()
    assert shared.sum() > 0.15 * min(touched_a, touched_b)
    assert np.allclose(cloud.roughness, 0.5) and np.allclose(cloud.metallic, 0.0)
    assert np.all((cloud.albedo >= 0) & (cloud.albedo <= 1))
    np.testing.assert_allclose(np.linalg.norm(cloud.normal, axis=1), 1.0, atol=1e-5)
    assert cloud.points.dtype == np.float32 and np.linalg.norm(cloud.points, axis=1).max() <= FUSION.extent


def test_depth_at_another_resolution_than_maps_and_camera(sevenscenes_dir):
    """320x240 depth, 640x480 camera_info and maps: same surfaces, attributes gathered at pixel centres."""
    frame, maps = load_frame(sevenscenes_dir, 0)
    half = Frame(frame.stamp_ns, frame.frame_id, frame.image, frame.camera,
                 np.ascontiguousarray(frame.depth[::2, ::2]), frame.camera_to_fixed)
    coarse = surface_points(half, maps, 1, FUSION.max_depth)
    full = surface_points(frame, maps, 1, FUSION.max_depth)
    assert len(coarse) == np.isfinite(half.depth).sum()
    distance, _ = cKDTree(full.points).query(coarse.points)
    assert np.median(distance) < 0.005  # half-res pixel centres fall between full-res ones
    lifted = unproject_depth(half.depth, half.camera, 1, FUSION.max_depth)
    np.testing.assert_array_equal(coarse.albedo, maps.albedo[2 * lifted.rows + 1, 2 * lifted.cols + 1])
