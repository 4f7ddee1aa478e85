"""Pixel correspondences between two views: geometric (depth + poses) or optical flow (DIS).

Both give, for source pixels (rows, cols), where they land in the target view (u = column,
v = row, float). Evaluation samples the target's maps there; consistency fine-tuning warps with them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mvinverse_ros.geometry.camera import project_points, unproject_depth
from mvinverse_ros.geometry.transforms import transform_points
from mvinverse_ros.types import CameraModel


@dataclass(frozen=True)
class Correspondence:
    """Source pixels (rows, cols) seen at target pixel coordinates (u, v)."""

    rows: np.ndarray
    cols: np.ndarray
    u: np.ndarray
    v: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def nearest(self) -> tuple[np.ndarray, np.ndarray]:
        """Target (rows, cols) rounded to the nearest pixel."""
        return np.rint(self.v).astype(np.int64), np.rint(self.u).astype(np.int64)


def reprojection(depth_src: np.ndarray, camera_src: CameraModel, pose_src: np.ndarray,
                 depth_dst: np.ndarray, camera_dst: CameraModel, pose_dst: np.ndarray,
                 relative_tolerance: float = 0.05) -> Correspondence:
    """Back-project source pixels with their depth and pose, keep those visible in the target.

    A pixel counts when it projects inside the target image in front of the camera and the
    target's own depth there agrees within `relative_tolerance` (so occluded points drop out).

    Args:
        depth_src: HxW metric depth of the source view (0 or NaN = invalid).
        camera_src: pinhole calibration of the source depth image.
        pose_src: 4x4 camera-to-world pose of the source optical frame.
        depth_dst: HxW metric depth of the target view.
        camera_dst: pinhole calibration of the target depth image.
        pose_dst: 4x4 camera-to-world pose of the target optical frame.
        relative_tolerance: largest |target depth - projected depth| / projected depth kept.
    """
    pts = unproject_depth(depth_src, camera_src)
    # np.linalg.inv, not transforms.invert: dataset poses are only orthonormal to ~1e-4.
    in_dst = transform_points(np.linalg.inv(pose_dst) @ pose_src, pts.points.astype(np.float64))
    uv, z = project_points(in_dst, camera_dst)
    h, w = depth_dst.shape
    with np.errstate(invalid="ignore"):
        inside = (z > 0) & (uv[:, 0] > -0.5) & (uv[:, 0] < w - 0.5) & (uv[:, 1] > -0.5) & (uv[:, 1] < h - 0.5)
    r = np.clip(np.rint(uv[:, 1]), 0, h - 1).astype(np.int64)
    c = np.clip(np.rint(uv[:, 0]), 0, w - 1).astype(np.int64)
    seen = depth_dst[r, c]
    with np.errstate(invalid="ignore"):
        keep = inside & np.isfinite(seen) & (seen > 0) & (np.abs(seen - z) < relative_tolerance * z)
    return Correspondence(pts.rows[keep], pts.cols[keep], uv[keep, 0], uv[keep, 1])


def optical_flow(image_src: np.ndarray, image_dst: np.ndarray, max_round_trip_px: float = 1.0) -> Correspondence:
    """Dense DIS optical flow from source to target, checked forwards and backwards.

    Pixels whose backward flow does not return within `max_round_trip_px` are dropped (occlusions,
    flow failures).

    Args:
        image_src: HxWx3 uint8 RGB.
        image_dst: HxWx3 uint8 RGB of the same size.
        max_round_trip_px: forward-backward tolerance in pixels.
    """
    grey = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY) for im in (image_src, image_dst)]
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    forward = dis.calc(grey[0], grey[1], None)  # type: ignore[call-overload]  # stubs lack the None output
    backward = dis.calc(grey[1], grey[0], None)  # type: ignore[call-overload]
    h, w = grey[0].shape
    rows, cols = np.mgrid[0:h, 0:w]
    u = cols + forward[..., 0]
    v = rows + forward[..., 1]
    back = cv2.remap(backward, u.astype(np.float32), v.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=1e6)
    round_trip = np.hypot(forward[..., 0] + back[..., 0], forward[..., 1] + back[..., 1])
    keep = (round_trip < max_round_trip_px) & (u > -0.5) & (u < w - 0.5) & (v > -0.5) & (v < h - 0.5)
    return Correspondence(rows[keep].astype(np.int64), cols[keep].astype(np.int64),
                          u[keep].astype(np.float64), v[keep].astype(np.float64))
