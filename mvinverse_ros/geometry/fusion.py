"""Fusing per-frame material maps into one voxel map in the fixed frame.

A frame with registered depth, calibration and a fixed-frame pose is lifted to 3D points that
carry the network's per-pixel materials (`surface_points`). `VoxelMap` keeps, per voxel, running
means of position and materials over every point that fell in it, how many frames saw it and
when it was last seen, so that the oldest voxels can leave first once the point budget is full.
All work is vectorised over points (sorted voxel keys), never a Python loop per point.
"""
from __future__ import annotations

import numpy as np

from mvinverse_ros.geometry.camera import rescale_pixel_indices, unproject_depth
from mvinverse_ros.geometry.normals import normalize, rotate_to_fixed
from mvinverse_ros.geometry.transforms import transform_points
from mvinverse_ros.types import Frame, MaterialCloud, MaterialMaps, SurfacePoints

_KEY_BITS = 21  # per axis: +-2**20 voxels from the origin fit one int64 key
_KEY_OFFSET = 1 << (_KEY_BITS - 1)


# What a frame must carry to be fused, in the order a missing one is reported.
FUSION_INPUTS = ("depth", "camera", "camera_to_fixed")


def missing_fusion_inputs(frame: Frame) -> list[str]:
    """Names of the Frame attributes fusion needs that `frame` lacks (empty when it can be fused)."""
    return [name for name in FUSION_INPUTS if getattr(frame, name) is None]


def surface_points(frame: Frame, maps: MaterialMaps, pixel_stride: int = 1, max_depth: float = np.inf) -> SurfacePoints:
    """Lift a frame's depth into the fixed frame and attach its materials pixel by pixel.

    Depth may have another resolution than the maps (indices are rescaled, pixel centres kept)
    and the camera another resolution than the depth (CameraModel.resized).

    Args:
        frame: needs `depth`, `camera` and `camera_to_fixed`.
        maps: the network's maps for this frame (normals in its REP 103 optical frame).
        pixel_stride: unproject every n-th pixel in each direction.
        max_depth: metres beyond which pixels are ignored.

    Raises:
        ValueError: the frame lacks depth, calibration or pose.
    """
    missing = missing_fusion_inputs(frame)
    if missing:
        raise ValueError(f"frame {frame.frame_id} at {frame.stamp_ns} ns cannot be fused: no {', '.join(missing)}")
    lifted = unproject_depth(frame.depth, frame.camera, pixel_stride, max_depth)
    rows, cols = rescale_pixel_indices(lifted.rows, lifted.cols, frame.depth.shape[:2], maps.albedo.shape[:2])
    return SurfacePoints(
        points=transform_points(frame.camera_to_fixed, lifted.points),
        albedo=maps.albedo[rows, cols].astype(np.float32),
        normal=normalize(rotate_to_fixed(maps.normal[rows, cols].astype(np.float32), frame.camera_to_fixed)),
        roughness=maps.roughness[rows, cols].reshape(-1).astype(np.float32),
        metallic=maps.metallic[rows, cols].reshape(-1).astype(np.float32),
        shading=maps.shading[rows, cols].astype(np.float32),
    )


# Column layout of VoxelMap's per-voxel sums.
_XYZ, _ALBEDO, _NORMAL, _ROUGH, _METAL, _SHADING, _WEIGHT = (
    slice(0, 3), slice(3, 6), slice(6, 9), 9, 10, slice(11, 14), 14)
_COLUMNS = 15


class VoxelMap:
    """Running per-voxel means of points and materials, bounded in space and in size.

    Args:
        voxel_size: voxel edge in metres.
        extent: points farther than this from the fixed-frame origin are dropped.
        max_points: voxel budget; beyond it the voxels seen longest ago leave first
            (ties: fewer views first).

    Raises:
        ValueError: non-positive sizes, or an extent too large for the voxel keys.
    """

    def __init__(self, voxel_size: float, extent: float, max_points: int):
        if voxel_size <= 0 or extent <= 0 or max_points < 1:
            raise ValueError(f"VoxelMap needs voxel_size > 0, extent > 0, max_points >= 1; got "
                             f"{voxel_size}, {extent}, {max_points}")
        if extent / voxel_size >= _KEY_OFFSET - 1:
            raise ValueError(f"extent {extent} m is more than {_KEY_OFFSET - 2} voxels of {voxel_size} m")
        self.voxel_size = float(voxel_size)
        self.extent = float(extent)
        self.max_points = int(max_points)
        self.counters = {"frames": 0, "points": 0, "points_beyond_extent": 0, "points_not_finite": 0,
                         "voxels_evicted": 0}
        self.clear()

    def clear(self) -> None:
        """Forget every voxel (counters keep counting)."""
        self._keys = np.empty(0, dtype=np.int64)
        self._sums = np.empty((0, _COLUMNS), dtype=np.float64)
        self._views = np.empty(0, dtype=np.uint32)
        self._last_seen = np.empty(0, dtype=np.int64)
        self._tick = 0

    def __len__(self) -> int:
        return int(self._keys.shape[0])

    def _voxel_keys(self, points: np.ndarray) -> np.ndarray:
        idx = np.floor(points / self.voxel_size).astype(np.int64) + _KEY_OFFSET
        return (idx[:, 0] << (2 * _KEY_BITS)) | (idx[:, 1] << _KEY_BITS) | idx[:, 2]

    def integrate(self, observed: SurfacePoints) -> int:
        """Add one frame's points; returns how many voxels it touched.

        Points beyond `extent` or with any non-finite value are dropped and counted.
        """
        # One row per attribute channel (14, N): contiguous rows for bincount.
        channels = np.vstack([observed.points.T, observed.albedo.T, observed.normal.T, observed.roughness[None],
                              observed.metallic[None], observed.shading.T]).astype(np.float32, copy=False)
        finite = np.all(np.isfinite(channels), axis=0)
        inside = finite & (np.einsum("in,in->n", channels[_XYZ], channels[_XYZ]) <= self.extent ** 2)
        self.counters["frames"] += 1
        self.counters["points"] += int(inside.sum())
        self.counters["points_not_finite"] += int((~finite).sum())
        self.counters["points_beyond_extent"] += int((finite & ~inside).sum())
        self._tick += 1
        channels = channels[:, inside]
        if channels.shape[1] == 0:
            return 0

        frame_keys, inverse = np.unique(self._voxel_keys(channels[_XYZ].T), return_inverse=True)
        frame_sums = np.empty((frame_keys.shape[0], _COLUMNS))
        for column, values in enumerate(channels):
            frame_sums[:, column] = np.bincount(inverse, weights=values, minlength=frame_keys.shape[0])
        frame_sums[:, _WEIGHT] = np.bincount(inverse, minlength=frame_keys.shape[0])

        pos = np.searchsorted(self._keys, frame_keys)
        known = np.zeros(frame_keys.shape[0], dtype=bool)
        if len(self):
            known = self._keys[np.minimum(pos, len(self) - 1)] == frame_keys
        hit = pos[known]
        self._sums[hit] += frame_sums[known]
        self._views[hit] += 1
        self._last_seen[hit] = self._tick
        new = pos[~known]
        count = int((~known).sum())
        self._keys = np.insert(self._keys, new, frame_keys[~known])
        self._sums = np.insert(self._sums, new, frame_sums[~known], axis=0)
        self._views = np.insert(self._views, new, np.ones(count, dtype=np.uint32))
        self._last_seen = np.insert(self._last_seen, new, np.full(count, self._tick, dtype=np.int64))
        self._evict()
        return int(frame_keys.shape[0])

    def _evict(self) -> None:
        excess = len(self) - self.max_points
        if excess <= 0:
            return
        leaving = np.lexsort((self._views, self._last_seen))[:excess]
        keep = np.ones(len(self), dtype=bool)
        keep[leaving] = False
        self._keys, self._sums = self._keys[keep], self._sums[keep]
        self._views, self._last_seen = self._views[keep], self._last_seen[keep]
        self.counters["voxels_evicted"] += excess

    def cloud(self) -> MaterialCloud:
        """One point per voxel (ordered by voxel key): mean position and materials, re-normalised normal."""
        weight = self._sums[:, _WEIGHT:_WEIGHT + 1]
        means = (self._sums / np.maximum(weight, 1.0)).astype(np.float32)
        return MaterialCloud(
            points=means[:, _XYZ].copy(),
            albedo=means[:, _ALBEDO].copy(),
            normal=normalize(self._sums[:, _NORMAL]).astype(np.float32),
            roughness=means[:, _ROUGH].copy(),
            metallic=means[:, _METAL].copy(),
            shading=means[:, _SHADING].copy(),
            view_count=self._views.copy(),
        )

    def last_seen(self) -> np.ndarray:
        """Integration tick (1, 2, ...) at which each voxel of `cloud()` was last touched."""
        return self._last_seen.copy()
