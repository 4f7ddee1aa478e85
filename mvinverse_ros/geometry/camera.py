"""Depth unprojection through a pinhole CameraModel into the REP 103 optical frame.

Optical frame: x right, y down, z forward; pixel (u, v) = (column, row) with integer
coordinates at pixel centres, as K in sensor_msgs/CameraInfo assumes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mvinverse_ros.types import CameraModel


@dataclass(frozen=True)
class PixelPoints:
    """Valid depth pixels lifted to 3D, with where they came from.

    Attributes:
        points: (N, 3) float32 points in the camera optical frame, metres.
        rows, cols: (N,) int64 pixel indices into the depth image, so that per-pixel attributes
            can be gathered with `attribute[rows, cols]`.
    """

    points: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    def __len__(self) -> int:
        return int(self.points.shape[0])


def camera_for_image(camera: CameraModel, height: int, width: int) -> CameraModel:
    """`camera` as seen at (height, width): itself, or rescaled when camera_info has another size."""
    if (camera.width, camera.height) == (width, height):
        return camera
    return camera.resized(width, height)


def unproject_depth(depth: np.ndarray, camera: CameraModel, pixel_stride: int = 1,
                    max_depth: float = np.inf) -> PixelPoints:
    """Lift every `pixel_stride`-th pixel of a metric depth image into the optical frame.

    Pixels that are NaN, non-positive or beyond `max_depth` are skipped. A camera calibrated at
    another resolution is rescaled to the depth image first.

    Args:
        depth: HxW depth in metres (REP 118 32FC1 semantics, NaN = invalid).
        camera: calibration of the depth image (rectified pinhole; D is ignored).
        pixel_stride: step between sampled rows and columns (>= 1).
        max_depth: depth in metres beyond which pixels are dropped.

    Raises:
        ValueError: depth that is not 2-D, or a stride below 1.
    """
    if depth.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {depth.shape}")
    if pixel_stride < 1:
        raise ValueError(f"pixel_stride must be >= 1, got {pixel_stride}")
    camera = camera_for_image(camera, depth.shape[0], depth.shape[1])
    rows_grid, cols_grid = np.mgrid[0:depth.shape[0]:pixel_stride, 0:depth.shape[1]:pixel_stride]
    z = depth[rows_grid, cols_grid]
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(z) & (z > 0) & (z <= max_depth)
    rows, cols, z = rows_grid[valid].astype(np.int64), cols_grid[valid].astype(np.int64), z[valid].astype(np.float64)
    K = camera.K
    x = (cols - K[0, 2]) * z / K[0, 0]
    y = (rows - K[1, 2]) * z / K[1, 1]
    return PixelPoints(np.stack([x, y, z], axis=1).astype(np.float32), rows, cols)


def rescale_pixel_indices(rows: np.ndarray, cols: np.ndarray, from_hw: tuple[int, int],
                          to_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the same image points on another grid of the same view (pixel-centre convention)."""
    if tuple(from_hw) == tuple(to_hw):
        return rows, cols
    r = np.floor((rows + 0.5) * (to_hw[0] / from_hw[0])).astype(np.int64)
    c = np.floor((cols + 0.5) * (to_hw[1] / from_hw[1])).astype(np.int64)
    return np.clip(r, 0, to_hw[0] - 1), np.clip(c, 0, to_hw[1] - 1)


def project_points(points: np.ndarray, camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) as (u, v) of optical-frame points, and their depth z (N,)."""
    points = np.asarray(points, dtype=np.float64)
    z = points[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = camera.K[0, 0] * points[:, 0] / z + camera.K[0, 2]
        v = camera.K[1, 1] * points[:, 1] / z + camera.K[1, 2]
    return np.stack([u, v], axis=1), z
