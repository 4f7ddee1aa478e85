"""Typed records that flow one way: messages -> frames -> windows -> engine -> maps -> messages/cloud.

Everything here is ROS-free numpy so that the node, the offline bag path, training and evaluation
share the same records.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

NS_PER_SECOND = 1_000_000_000
"""Stamps are integer nanoseconds everywhere (ROS time, bag time)."""


@dataclass(frozen=True)
class CameraModel:
    """Pinhole calibration of one image stream (sensor_msgs/CameraInfo, plumb_bob assumed rectified).

    Attributes:
        width, height: image size in pixels the calibration refers to.
        K: 3x3 intrinsic matrix (fx, fy, cx, cy) in pixels.
        distortion_model: CameraInfo.distortion_model, kept for round trips.
        D: distortion coefficients, kept for round trips (unprojection assumes rectified images).
    """

    width: int
    height: int
    K: np.ndarray
    distortion_model: str = "plumb_bob"
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))

    def resized(self, width: int, height: int) -> "CameraModel":
        """The same camera seen at another resolution (pixel-centre convention)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.astype(np.float64).copy()
        K[0, 0] *= sx
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 1] *= sy
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
        return CameraModel(width, height, K, self.distortion_model, self.D)


@dataclass(frozen=True)
class Frame:
    """One synchronized camera sample, already decoded.

    Attributes:
        stamp_ns: header stamp of the colour image in nanoseconds.
        frame_id: optical frame of the colour image (REP 103: x right, y down, z forward).
        image: HxWx3 uint8 RGB.
        camera: calibration, if a camera_info was paired.
        depth: HxW float32 depth in metres registered to `image`, NaN where invalid, or None.
        camera_to_fixed: 4x4 pose of `frame_id` in the fixed frame at `stamp_ns`, or None.
        source: name of the camera stream this frame came from (multi-camera setups).
    """

    stamp_ns: int
    frame_id: str
    image: np.ndarray
    camera: CameraModel | None = None
    depth: np.ndarray | None = None
    camera_to_fixed: np.ndarray | None = None
    source: str = "camera"

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class Window:
    """A set of frames the network sees together, and which of them get published.

    Attributes:
        window_id: running index of the window in its stream.
        frames: the frames, oldest first.
        publish: indices into `frames` whose maps are wanted.
    """

    window_id: int
    frames: tuple[Frame, ...]
    publish: tuple[int, ...]


@dataclass(frozen=True)
class MaterialMaps:
    """The network's per-frame prediction at the frame's own resolution (all float32).

    Attributes:
        albedo: HxWx3 in [0, 1].
        roughness: HxW in [0, 1].
        metallic: HxW in [0, 1].
        normal: HxWx3 unit vectors in the camera optical frame (REP 103).
        shading: HxWx3 diffuse shading in [0, 1].
    """

    albedo: np.ndarray
    roughness: np.ndarray
    metallic: np.ndarray
    normal: np.ndarray
    shading: np.ndarray


MAP_NAMES: tuple[str, ...] = tuple(f.name for f in fields(MaterialMaps))
"""The map names in MaterialMaps' field order (network heads, files, message fields, contact-sheet columns)."""


@dataclass(frozen=True)
class WindowResult:
    """The engine's answer for one window.

    Attributes:
        window: the window that was run.
        maps: one MaterialMaps per entry of `window.publish`, in the same order.
        inference_seconds: wall time of the network for this window.
    """

    window: Window
    maps: tuple[MaterialMaps, ...]
    inference_seconds: float

    def published(self) -> list[tuple[Frame, MaterialMaps]]:
        """(frame, maps) pairs in publish order."""
        return [(self.window.frames[i], m) for i, m in zip(self.window.publish, self.maps)]


@dataclass(frozen=True)
class SurfacePoints:
    """Material-annotated points in the fixed frame (all float32).

    Attributes:
        points: (N, 3) positions in metres.
        albedo: (N, 3) linear RGB in [0, 1].
        normal: (N, 3) unit normals in the fixed frame.
        roughness, metallic: (N,) in [0, 1].
        shading: (N, 3) diffuse shading RGB in [0, 1].
    """

    points: np.ndarray
    albedo: np.ndarray
    normal: np.ndarray
    roughness: np.ndarray
    metallic: np.ndarray
    shading: np.ndarray

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass(frozen=True, kw_only=True)
class MaterialCloud(SurfacePoints):
    """The fused map: one averaged point per voxel.

    Attributes:
        view_count: (N,) uint32 number of integrated frames that touched the voxel.
        albedo_std: (N, 3) float32 standard deviation of albedo over the voxel's points, per channel.
        roughness_std, metallic_std: (N,) float32 standard deviations over the voxel's points.
        specular: (N,) float32 cue in [0, 1] that depth is unreliable there (metal or glossy;
            geometry.fusion.specular_cue of the mean roughness and metallic).
    """

    view_count: np.ndarray
    albedo_std: np.ndarray
    roughness_std: np.ndarray
    metallic_std: np.ndarray
    specular: np.ndarray


@dataclass(frozen=True)
class MaterialQuery:
    """The fused map's materials at query points (geometry.query.query_materials), one entry per point.

    Where `found` is false the distance is +inf, materials and normals are NaN, view_count is 0.

    Attributes:
        found: (M,) bool, a voxel lies within the search radius.
        distance: (M,) float64 metres to the nearest voxel mean position.
        albedo, albedo_std: (M, 3) float32 mean and standard deviation per channel.
        roughness, roughness_std, metallic, metallic_std, specular: (M,) float32.
        normal: (M, 3) float32 unit normals in the frame the points were given in.
        view_count: (M,) uint32 frames that saw the voxel.
    """

    found: np.ndarray
    distance: np.ndarray
    albedo: np.ndarray
    albedo_std: np.ndarray
    roughness: np.ndarray
    roughness_std: np.ndarray
    metallic: np.ndarray
    metallic_std: np.ndarray
    specular: np.ndarray
    normal: np.ndarray
    view_count: np.ndarray

    def __len__(self) -> int:
        return int(self.found.shape[0])
