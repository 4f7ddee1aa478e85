"""View-consistent albedo edits: a region placed in the fixed frame gets a new base colour.

The region is a box, a sphere, or the 3-D surface under a pixel mask of one frame (lifted with its
depth). Every frame finds its pixels in the region through its own depth and pose, so all views
paint the same surface; re-rendering with each frame's predicted shading then keeps the edit
consistent across views by construction. The new colour is uniform or a texture projected
planarly onto the region's two longest bounding-box axes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from mvinverse_ros.geometry.transforms import transform_points
from mvinverse_ros.rendering.relight import lift_frame
from mvinverse_ros.types import Frame, MaterialMaps

MASK_REACH = 0.03
"""Metres from the lifted mask surface within which other views' points belong to a mask region."""


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in the fixed frame, corners `low` <= `high` (3,) metres."""

    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        low, high = np.minimum(self.low, self.high), np.maximum(self.low, self.high)
        object.__setattr__(self, "low", low.astype(np.float64))
        object.__setattr__(self, "high", high.astype(np.float64))

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: which of the (N, 3) points lie inside."""
        return np.all((points >= self.low) & (points <= self.high), axis=1)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.low, self.high


@dataclass(frozen=True)
class Sphere:
    """Ball of `radius` metres around `centre` (3,) in the fixed frame."""

    centre: np.ndarray
    radius: float

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: which of the (N, 3) points lie inside."""
        return np.sum((points - self.centre) ** 2, axis=1) <= self.radius ** 2

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.centre - self.radius, self.centre + self.radius


@dataclass(frozen=True)
class NearSurface:
    """Everything within `reach` metres of a set of fixed-frame surface points (a lifted mask)."""

    points: np.ndarray
    reach: float = MASK_REACH

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tree", cKDTree(self.points))

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: which of the (N, 3) points lie within reach of the surface."""
        distance, _ = self._tree.query(points, distance_upper_bound=self.reach)
        return np.isfinite(distance)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.points.min(axis=0) - self.reach, self.points.max(axis=0) + self.reach


Region = Box | Sphere | NearSurface


def region_from_mask(frame: Frame, mask: np.ndarray, reach: float = MASK_REACH) -> NearSurface:
    """The fixed-frame surface under `mask` on `frame`, lifted with the frame's depth and pose.

    Args:
        frame: needs depth, camera and pose.
        mask: HxW bool (any resolution of the frame's aspect; it is resampled to the depth grid).
        reach: tolerance in metres for other views' points.

    Raises:
        ValueError: the frame lacks depth, calibration or pose, or no valid depth lies under the mask.
    """
    mask = np.asarray(mask, dtype=bool)
    lifted = lift_frame(frame, mask.shape[0], mask.shape[1])
    inside = mask[lifted.rows, lifted.cols]
    if not inside.any():
        raise ValueError(f"the mask on the frame at {frame.stamp_ns} ns covers no pixel with valid depth")
    return NearSurface(transform_points(frame.camera_to_fixed, lifted.points[inside].astype(np.float64)), reach)


@dataclass(frozen=True)
class AlbedoEdit:
    """A new base colour for a region: uniform `colour` (3,) or a planar `texture` (HxWx3), linear RGB."""

    region: Region
    colour: np.ndarray | None = None
    texture: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.colour is None) == (self.texture is None):
            raise ValueError("an albedo edit needs exactly one of a colour or a texture")

    def paint(self, points: np.ndarray) -> np.ndarray:
        """Albedo (N, 3) of fixed-frame points inside the region.

        A texture spans the region's bounding box along its two longest axes (u along the longest,
        v along the second), sampled at the nearest texel.
        """
        if self.texture is None:
            return np.broadcast_to(np.asarray(self.colour, dtype=np.float32), (points.shape[0], 3))
        low, high = self.region.bounds()
        extent = np.maximum(high - low, 1e-9)
        u_axis, v_axis = np.argsort(-extent)[:2]
        u = np.clip((points[:, u_axis] - low[u_axis]) / extent[u_axis], 0.0, 1.0)
        v = np.clip((points[:, v_axis] - low[v_axis]) / extent[v_axis], 0.0, 1.0)
        rows = np.rint(v * (self.texture.shape[0] - 1)).astype(np.int64)
        cols = np.rint(u * (self.texture.shape[1] - 1)).astype(np.int64)
        return self.texture[rows, cols].astype(np.float32)


def edit_albedo(points: np.ndarray, albedo: np.ndarray, edits: Sequence[AlbedoEdit]) -> np.ndarray:
    """A copy of `albedo` (N, 3) with every edit painted over the fixed-frame `points` (N, 3) it contains.

    Later edits paint over earlier ones.
    """
    albedo = np.array(albedo, dtype=np.float32)
    for edit in edits:
        inside = np.flatnonzero(edit.region.contains(points))
        albedo[inside] = edit.paint(points[inside])
    return albedo


def edit_frame(frame: Frame, maps: MaterialMaps, edits: Sequence[AlbedoEdit]) -> np.ndarray:
    """HxWx3 albedo of `frame` with the edits applied where its depth places pixels in a region.

    Pixels without valid depth cannot be located and keep the predicted albedo.

    Raises:
        ValueError: the frame lacks depth, calibration or pose.
    """
    height, width = maps.albedo.shape[:2]
    lifted = lift_frame(frame, height, width)
    points = transform_points(frame.camera_to_fixed, lifted.points.astype(np.float64))
    albedo = maps.albedo.astype(np.float32, copy=True)
    albedo[lifted.rows, lifted.cols] = edit_albedo(points, albedo[lifted.rows, lifted.cols], edits)
    return albedo
