"""The perception pipeline shared by the ROS node and `mvinverse-ros bag process`.

Frames in, windows through the network, material maps and a fused material cloud out.

ROS-free and thread-agnostic: it never starts threads and never blocks on anything but the
network. The node may call `submit` from its subscription callback and `process` from its
inference worker; the offline path calls both from one loop. Contract:

- `submit(frame)` only touches the per-camera window policies; call it from one thread at a time.
- `process(window)` runs the engine and integrates the published frames into the voxel map; call
  it from one thread at a time (the engine holds one model). It may run concurrently with
  `submit`, and with `cloud()`, which reads the map under the same lock `process` writes it under.
- `reset()` forgets windows, the engine's frame cache and the map (bag loop, clock jump).
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from mvinverse_ros.conversions.camera_info import camera_model_from_msg
from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import stamp_to_ns
from mvinverse_ros.conversions.images import depth_to_metres, rgb_from_msg

from mvinverse_ros.engine.windowing import WindowPolicy
from mvinverse_ros.geometry.fusion import MaterialCloud, VoxelMap, missing_fusion_inputs, surface_points
from mvinverse_ros.params import PerceptionParams
from mvinverse_ros.geometry.transforms import TransformError
from mvinverse_ros.types import Frame, MaterialMaps, Window, WindowResult

LOG = logging.getLogger(__name__)

# Why a synchronized set lost something on its way to a Frame (keys of the skip counters).
BAD_IMAGE = "bad_image"            # colour undecodable or unsupported: no frame at all
BAD_CAMERA_INFO = "bad_camera_info"  # frame kept without calibration (no cloud)
BAD_DEPTH = "bad_depth"            # frame kept without depth (no cloud)
NO_TRANSFORM = "no_transform"      # frame kept without pose (no cloud)

# Counter for a published frame that could not be fused, by the first Frame attribute it lacks.
_UNFUSABLE_REASONS = {"depth": "no_depth", "camera": "no_camera_info", "camera_to_fixed": "no_pose"}

PoseLookup = Callable[[str, int], np.ndarray]
"""(optical frame_id, stamp_ns) -> 4x4 camera-to-fixed pose; raises TransformError when unknown."""


def _same_aspect(a_hw: tuple[int, int], b_hw: tuple[int, int], tolerance: float = 0.01) -> bool:
    return abs(a_hw[1] / a_hw[0] - b_hw[1] / b_hw[0]) <= tolerance * (b_hw[1] / b_hw[0])


def frame_from_messages(image: Any, camera_info: Any | None, depth: Any | None, source: str,
                        lookup_pose: PoseLookup | None) -> tuple[Frame | None, list[str]]:
    """Decode one synchronized set of messages (rosbags or rclpy, duck-typed) into a Frame.

    Whatever is broken is dropped alone and named: a bad colour image gives no frame; a bad
    camera_info or depth (undecodable, or not the colour image's aspect ratio, i.e. not
    registered to it) or a missing transform gives a frame without it, so it still gets maps.

    Returns:
        (frame or None, reasons) with reasons from BAD_IMAGE, BAD_CAMERA_INFO, BAD_DEPTH, NO_TRANSFORM.
    """
    reasons: list[str] = []
    frame_id = image.header.frame_id
    stamp_ns = stamp_to_ns(image.header.stamp)
    try:
        rgb = rgb_from_msg(image)
    except ConversionError as err:
        LOG.warning("%s: dropped image at %d ns: %s", source, stamp_ns, err)
        return None, [BAD_IMAGE]
    hw = rgb.shape[:2]
    camera = None
    if camera_info is not None:
        try:
            camera = camera_model_from_msg(camera_info)
            if not _same_aspect((camera.height, camera.width), hw):
                raise ConversionError(f"camera_info is {camera.width}x{camera.height}, image {hw[1]}x{hw[0]}")
        except ConversionError as err:
            LOG.warning("%s: image at %d ns kept without calibration: %s", source, stamp_ns, err)
            reasons.append(BAD_CAMERA_INFO)
            camera = None
    depth_m = None
    if depth is not None:
        try:
            depth_m = depth_to_metres(depth)
            if not _same_aspect(depth_m.shape[:2], hw):
                raise ConversionError(f"depth is {depth_m.shape[1]}x{depth_m.shape[0]}, image {hw[1]}x{hw[0]}: "
                                      "not registered to the colour image")
        except ConversionError as err:
            LOG.warning("%s: image at %d ns kept without depth: %s", source, stamp_ns, err)
            reasons.append(BAD_DEPTH)
            depth_m = None
    pose = None
    if lookup_pose is not None:
        try:
            pose = lookup_pose(frame_id, stamp_ns)
        except TransformError as err:
            LOG.info("%s: no pose for %s at %d ns: %s", source, frame_id, stamp_ns, err)
            reasons.append(NO_TRANSFORM)
    return Frame(stamp_ns, frame_id, rgb, camera, depth_m, pose, source), reasons


@dataclass(frozen=True)
class PipelineOutput:
    """What one window produced.

    Attributes:
        result: the engine's maps for the window's published frames.
        fused: how many published frames went into the voxel map.
        cloud_due: whether the fused cloud should be published now (every
            `execution.publish_cloud_every` windows, fusion enabled).
    """

    result: WindowResult
    fused: int
    cloud_due: bool


class PerceptionPipeline:
    """Per-camera windowing, the streaming engine and the fused voxel map behind one object.

    Args:
        params: the node's parameters (window, fusion, execution sections are read).
        engine: a StreamingEngine (anything with `run(window) -> WindowResult` and `reset()`).

    Attributes:
        counters: 'frames', 'windows', 'published', 'fused' and, for published frames that could
            not be fused, 'no_depth', 'no_camera_info', 'no_pose'.
    """

    def __init__(self, params: PerceptionParams, engine) -> None:
        self.params = params
        self.engine = engine
        self._policies: dict[str, WindowPolicy] = {}
        self._map_lock = threading.Lock()
        self._map = self._new_map()
        self.counters: Counter[str] = Counter()

    def _new_map(self) -> VoxelMap | None:
        return VoxelMap.from_params(self.params.fusion) if self.params.fusion.enabled else None

    def policy(self, source: str) -> WindowPolicy:
        """The window policy of one camera (created on its first frame)."""
        if source not in self._policies:
            self._policies[source] = WindowPolicy(self.params.window)
        return self._policies[source]

    def submit(self, frame: Frame) -> Window | None:
        """Offer a frame to its camera's window; returns a window when the network should run."""
        self.counters["frames"] += 1
        return self.policy(frame.source).push(frame)

    def process(self, window: Window) -> PipelineOutput:
        """Run the network on `window` and fuse its published frames that have depth, camera and pose."""
        result = self.engine.run(window)
        self.counters["windows"] += 1
        self.counters["published"] += len(result.maps)
        fused = 0
        if self._map is not None:
            for frame, maps in result.published():
                missing = missing_fusion_inputs(frame)
                if missing:
                    self.counters[_UNFUSABLE_REASONS[missing[0]]] += 1
                    continue
                self._integrate(frame, maps)
                fused += 1
        self.counters["fused"] += fused
        every = max(1, self.params.execution.publish_cloud_every)
        cloud_due = self._map is not None and self.counters["windows"] % every == 0
        return PipelineOutput(result, fused, cloud_due)

    def _integrate(self, frame: Frame, maps: MaterialMaps) -> None:
        observed = surface_points(frame, maps, self.params.fusion)
        with self._map_lock:
            self._map.integrate(observed)

    def cloud(self) -> MaterialCloud | None:
        """Snapshot of the fused map, or None when fusion is disabled."""
        if self._map is None:
            return None
        with self._map_lock:
            return self._map.cloud()

    def window_counters(self) -> Counter[str]:
        """The window policies' counters summed over cameras."""
        total: Counter[str] = Counter()
        for policy in self._policies.values():
            total.update(policy.counters)
        return total

    def reset(self) -> None:
        """Forget held frames, the engine's cache and the map; counters keep counting."""
        for policy in self._policies.values():
            policy.reset()
        self.engine.reset()
        with self._map_lock:
            self._map = self._new_map()
