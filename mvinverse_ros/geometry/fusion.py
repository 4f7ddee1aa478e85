"""Fusing per-frame material maps into one voxel map in the fixed frame.

A frame with registered depth, calibration and a fixed-frame pose is lifted to 3D points that
carry the network's per-pixel materials (`surface_points`). `VoxelMap` keeps, per voxel, running
means of position and materials over every point that fell in it, the spread (variance) of
albedo, roughness and metallic, how many frames saw it and when it was last seen, so that the
oldest voxels can leave first once the point budget is full. All work is vectorised over points
(sorted voxel keys), never a Python loop per point.

Variances are kept as sums of squared deviations from the mean (M2) and merged once per frame
with the pairwise update of Chan, Golub and LeVeque: a frame's own M2 is computed about the
frame's mean (two passes), then combined with the voxel's. Unlike sums of squares minus the
squared mean, this does not cancel when the spread is small next to the mean.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    assert frame.depth is not None and frame.camera is not None and frame.camera_to_fixed is not None  # for mypy
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


def specular_cue(roughness: np.ndarray, metallic: np.ndarray) -> np.ndarray:
    """How mirror-like a surface is, in [0, 1], from roughness and metallic of any shape (pixels or voxels).

    Depth sensors (structured light, time of flight, stereo) often return no depth or wrong depth
    on metal and on glossy surfaces, so a planner that trusts depth can down-weight points with a
    high cue. The cue is 1 - (1 - metallic) * (1 - (1 - roughness)**2): the probabilistic "or" of
    metal and glossy, 1 for any metal or a perfectly smooth surface, 0 only for a rough dielectric
    (a dielectric of roughness 0.5 scores 0.25). A documented function of the maps, not a model.
    """
    rough = np.clip(roughness, 0.0, 1.0)
    metal = np.clip(metallic, 0.0, 1.0)
    return (1.0 - (1.0 - metal) * (1.0 - (1.0 - rough) ** 2)).astype(np.float32)


# Column layout of VoxelMap's per-voxel sums (float64, in this order; `count` is the number of points).
SUM_COLUMNS = ("x", "y", "z", "albedo_r", "albedo_g", "albedo_b", "normal_x", "normal_y", "normal_z", "roughness",
               "metallic", "shading_r", "shading_g", "shading_b", "count")
_XYZ, _ALBEDO, _NORMAL, _ROUGH, _METAL, _SHADING, _WEIGHT = (
    slice(0, 3), slice(3, 6), slice(6, 9), 9, 10, slice(11, 14), 14)
_COLUMNS = len(SUM_COLUMNS)
# The sum columns whose spread is kept (M2 columns, in this order).
SPREAD_COLUMNS = ("albedo_r", "albedo_g", "albedo_b", "roughness", "metallic")
_SPREAD = np.array([SUM_COLUMNS.index(name) for name in SPREAD_COLUMNS])
_M2_ALBEDO, _M2_ROUGH, _M2_METAL = slice(0, 3), 3, 4


@dataclass(frozen=True)
class VoxelMapState:
    """Everything a VoxelMap needs to carry on integrating exactly where it stopped.

    Attributes:
        voxel_size: voxel edge in metres (keys mean nothing at another size).
        tick: integration calls so far (last_seen counts in these).
        indices: (N, 3) int32 voxel indices floor(p / voxel_size), sorted by voxel key.
        sums: (N, len(SUM_COLUMNS)) float64 per-voxel sums of every point's attributes.
        m2: (N, len(SPREAD_COLUMNS)) float64 sums of squared deviations from the voxel mean.
        views: (N,) uint32 frames that touched each voxel.
        last_seen: (N,) int64 tick at which each voxel was last touched.
    """

    voxel_size: float
    tick: int
    indices: np.ndarray
    sums: np.ndarray
    m2: np.ndarray
    views: np.ndarray
    last_seen: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])


class VoxelMap:
    """Running per-voxel means and spreads of points and materials, bounded in space and in size.

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
        self._m2 = np.empty((0, len(SPREAD_COLUMNS)), dtype=np.float64)
        self._views = np.empty(0, dtype=np.uint32)
        self._last_seen = np.empty(0, dtype=np.int64)
        self._tick = 0

    def __len__(self) -> int:
        return int(self._keys.shape[0])

    def _voxel_keys(self, points: np.ndarray) -> np.ndarray:
        return _keys_of_indices(np.floor(points / self.voxel_size).astype(np.int64))

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
        voxels = frame_keys.shape[0]
        frame_sums = np.empty((voxels, _COLUMNS))
        for column, values in enumerate(channels):
            frame_sums[:, column] = np.bincount(inverse, weights=values, minlength=voxels)
        frame_sums[:, _WEIGHT] = np.bincount(inverse, minlength=voxels)
        frame_means = frame_sums[:, _SPREAD] / frame_sums[:, _WEIGHT:_WEIGHT + 1]
        frame_m2 = np.empty((voxels, len(SPREAD_COLUMNS)))
        for column, source in enumerate(_SPREAD):
            deviation = channels[source].astype(np.float64) - frame_means[inverse, column]
            frame_m2[:, column] = np.bincount(inverse, weights=deviation * deviation, minlength=voxels)

        pos = np.searchsorted(self._keys, frame_keys)
        known = np.zeros(voxels, dtype=bool)
        if len(self):
            known = self._keys[np.minimum(pos, len(self) - 1)] == frame_keys
        hit = pos[known]
        before = self._sums[hit, _WEIGHT:_WEIGHT + 1]
        added = frame_sums[known, _WEIGHT:_WEIGHT + 1]
        delta = frame_means[known] - self._sums[hit][:, _SPREAD] / before
        self._m2[hit] += frame_m2[known] + delta * delta * (before * added / (before + added))
        self._sums[hit] += frame_sums[known]
        self._views[hit] += 1
        self._last_seen[hit] = self._tick
        new = pos[~known]
        count = int((~known).sum())
        self._keys = np.insert(self._keys, new, frame_keys[~known])
        self._sums = np.insert(self._sums, new, frame_sums[~known], axis=0)
        self._m2 = np.insert(self._m2, new, frame_m2[~known], axis=0)
        self._views = np.insert(self._views, new, np.ones(count, dtype=np.uint32))
        self._last_seen = np.insert(self._last_seen, new, np.full(count, self._tick, dtype=np.int64))
        self._evict()
        return int(voxels)

    def _evict(self) -> None:
        excess = len(self) - self.max_points
        if excess <= 0:
            return
        leaving = np.lexsort((self._views, self._last_seen))[:excess]
        keep = np.ones(len(self), dtype=bool)
        keep[leaving] = False
        self._keys, self._sums, self._m2 = self._keys[keep], self._sums[keep], self._m2[keep]
        self._views, self._last_seen = self._views[keep], self._last_seen[keep]
        self.counters["voxels_evicted"] += excess

    def cloud(self) -> MaterialCloud:
        """One point per voxel (ordered by voxel key): mean position and materials, re-normalised normal.

        Spreads are population standard deviations (divided by the number of points) of every
        point that fell in the voxel, over all frames; 0 for a voxel of one point.
        """
        weight = self._sums[:, _WEIGHT:_WEIGHT + 1]
        means = (self._sums / np.maximum(weight, 1.0)).astype(np.float32)
        std = np.sqrt(np.maximum(self._m2, 0.0) / np.maximum(weight, 1.0)).astype(np.float32)
        return MaterialCloud(
            points=means[:, _XYZ].copy(),
            albedo=means[:, _ALBEDO].copy(),
            normal=normalize(self._sums[:, _NORMAL]).astype(np.float32),
            roughness=means[:, _ROUGH].copy(),
            metallic=means[:, _METAL].copy(),
            shading=means[:, _SHADING].copy(),
            view_count=self._views.copy(),
            albedo_std=std[:, _M2_ALBEDO].copy(),
            roughness_std=std[:, _M2_ROUGH].copy(),
            metallic_std=std[:, _M2_METAL].copy(),
            specular=specular_cue(means[:, _ROUGH], means[:, _METAL]),
        )

    def last_seen(self) -> np.ndarray:
        """Integration tick (1, 2, ...) at which each voxel of `cloud()` was last touched."""
        return self._last_seen.copy()

    def state(self) -> VoxelMapState:
        """A copy of the map's contents, from which `restore` rebuilds it bit for bit."""
        indices = np.stack([(self._keys >> shift) & ((1 << _KEY_BITS) - 1) for shift in (2 * _KEY_BITS, _KEY_BITS, 0)],
                           axis=1) - _KEY_OFFSET
        return VoxelMapState(self.voxel_size, self._tick, indices.astype(np.int32), self._sums.copy(),
                             self._m2.copy(), self._views.copy(), self._last_seen.copy())

    def restore(self, state: VoxelMapState) -> None:
        """Replace the map's contents by `state` (from `state()`, or a PLY); the budget then applies.

        Raises:
            ValueError: a state of another voxel size, or with inconsistent shapes.
        """
        if state.voxel_size != self.voxel_size:
            raise ValueError(f"the saved map has voxels of {state.voxel_size} m, this map {self.voxel_size} m")
        n = len(state)
        shapes = (state.indices.shape, state.sums.shape, state.m2.shape, state.views.shape, state.last_seen.shape)
        if shapes != ((n, 3), (n, _COLUMNS), (n, len(SPREAD_COLUMNS)), (n,), (n,)):
            raise ValueError(f"the saved map's arrays do not fit together: shapes {shapes}")
        if n and np.abs(state.indices).max() >= _KEY_OFFSET - 1:
            raise ValueError(f"the saved map has voxel indices beyond +-{_KEY_OFFSET - 2}")
        keys = _keys_of_indices(state.indices.astype(np.int64))
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._sums = state.sums[order].astype(np.float64)
        self._m2 = state.m2[order].astype(np.float64)
        self._views = state.views[order].astype(np.uint32)
        self._last_seen = state.last_seen[order].astype(np.int64)
        self._tick = int(state.tick)
        self._evict()


def _keys_of_indices(indices: np.ndarray) -> np.ndarray:
    """One sortable int64 key per (N, 3) int64 voxel index."""
    idx = indices + _KEY_OFFSET
    return (idx[:, 0] << (2 * _KEY_BITS)) | (idx[:, 1] << _KEY_BITS) | idx[:, 2]
