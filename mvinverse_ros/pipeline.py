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

import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mvinverse_ros.engine.contract import WindowEngine
from mvinverse_ros.engine.windowing import WindowConfig, WindowPolicy
from mvinverse_ros.geometry.fusion import VoxelMap, missing_fusion_inputs, surface_points
from mvinverse_ros.params import ModelParams, PerceptionParams, WindowParams
from mvinverse_ros.types import Frame, MaterialCloud, MaterialMaps, Window, WindowResult

if TYPE_CHECKING:
    from mvinverse_ros.engine.streaming import StreamingEngine
    from mvinverse_ros.model import LoadedModel

# Counter for a published frame that could not be fused, by the first Frame attribute it lacks.
_UNFUSABLE_REASONS = {"depth": "no_depth", "camera": "no_camera_info", "camera_to_fixed": "no_pose"}


def window_config(params: WindowParams) -> WindowConfig:
    """The window policy's record from the `window.*` parameters."""
    return WindowConfig(**dataclasses.asdict(params))


def engine_from_params(params: ModelParams) -> tuple[StreamingEngine, LoadedModel]:
    """(StreamingEngine, LoadedModel) as the `model.*` parameters describe (imports torch).

    `model.long_side: 0` runs the weights at the size they were trained at.
    """
    from mvinverse_ros.engine.preprocess import resolve_device
    from mvinverse_ros.engine.streaming import StreamingEngine
    from mvinverse_ros.model import load_model

    device = resolve_device(params.device)
    loaded = load_model(checkpoint=params.checkpoint, preset=params.preset, device=str(device))
    engine = StreamingEngine(
        loaded.model, device=str(device), dtype=params.dtype, long_side=params.long_side or loaded.native_long_side,
        normal_convention=params.normal_convention,
    )
    return engine, loaded


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
        engine: what runs windows (a StreamingEngine, see `engine_from_params`).

    Attributes:
        counters: 'frames', 'windows', 'published', 'fused' and, for published frames that could
            not be fused, 'no_depth', 'no_camera_info', 'no_pose'.
    """

    def __init__(self, params: PerceptionParams, engine: WindowEngine) -> None:
        self.params = params
        self.engine = engine
        self._policies: dict[str, WindowPolicy] = {}
        self._map_lock = threading.Lock()
        self._map = self._new_map()
        self.counters: Counter[str] = Counter()

    def _new_map(self) -> VoxelMap | None:
        fusion = self.params.fusion
        return VoxelMap(fusion.voxel_size, fusion.extent, fusion.max_points) if fusion.enabled else None

    def policy(self, source: str) -> WindowPolicy:
        """The window policy of one camera (created on its first frame)."""
        if source not in self._policies:
            self._policies[source] = WindowPolicy(window_config(self.params.window))
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
        observed = surface_points(frame, maps, self.params.fusion.pixel_stride, self.params.fusion.max_depth)
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
