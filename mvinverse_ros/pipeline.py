"""The perception pipeline shared by the ROS node and `mvinverse-ros bag process`.

Frames in, windows through the network, material maps and a fused material cloud out.

ROS-free and thread-agnostic: it never starts threads and never blocks on anything but the
network. The node may call `submit` from its subscription callback and `process` from its
inference worker; the offline path calls both from one loop. Contract:

- `submit(frame)` only touches the per-camera window policies; call it from one thread at a time.
- `process(window)` runs the engine and integrates the published frames into the voxel map; call
  it from one thread at a time (the engine holds one model). It may run concurrently with
  `submit`, and with `cloud()`, which reads the map under the same lock `process` writes it under.
- `reset()` forgets windows, the engine's frame cache and the map (bag loop, clock jump); any
  thread may call it: it waits for a running `process` to finish. A map loaded from
  `fusion.load_map` comes back as it was loaded.
- `save_map(path)` and `clear_map()` take the map's lock (the node's map services).
"""
from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mvinverse_ros.conversions.ply import read_map_ply, write_ply
from mvinverse_ros.engine.contract import WindowEngine
from mvinverse_ros.engine.windowing import WindowConfig, WindowPolicy
from mvinverse_ros.geometry.fusion import VoxelMap, missing_fusion_inputs, surface_points
from mvinverse_ros.params import ModelParams, PerceptionParams, WindowParams
from mvinverse_ros.types import MAP_NAMES, Frame, MaterialCloud, MaterialMaps, Window, WindowResult

if TYPE_CHECKING:
    from mvinverse_ros.engine.streaming import StreamingEngine
    from mvinverse_ros.model import LoadedModel

# Counter for a published frame that could not be fused, by the first Frame attribute it lacks.
_UNFUSABLE_REASONS = {"depth": "no_depth", "camera": "no_camera_info", "camera_to_fixed": "no_pose"}


def finite_maps(result: WindowResult) -> tuple[WindowResult, int]:
    """(`result` without the frames whose maps hold NaN or Inf, how many were dropped).

    Such maps (e.g. from broken weights) are neither published nor fused, so they cannot poison the map.
    """
    keep = [k for k, maps in enumerate(result.maps)
            if all(np.isfinite(getattr(maps, name)).all() for name in MAP_NAMES)]
    if len(keep) == len(result.maps):
        return result, 0
    window = dataclasses.replace(result.window, publish=tuple(result.window.publish[k] for k in keep))
    dropped = len(result.maps) - len(keep)
    return dataclasses.replace(result, window=window, maps=tuple(result.maps[k] for k in keep)), dropped


def window_config(params: WindowParams) -> WindowConfig:
    """The window policy's record from the `window.*` parameters."""
    return WindowConfig(**dataclasses.asdict(params))


def engine_from_params(params: ModelParams) -> tuple[StreamingEngine, LoadedModel]:
    """(StreamingEngine, LoadedModel) as the `model.*` parameters describe (imports torch).

    `model.long_side: 0` runs the weights at the size they were trained at. `model.backend:
    onnxruntime` runs the export in `model.onnx_dir` instead of torch; everything wrong with it
    (files, preset, size, checkpoint, providers, dtype) is an ExportError here, not at the first frame.
    """
    from mvinverse_ros.engine.preprocess import resolve_device
    from mvinverse_ros.engine.streaming import StreamingEngine
    from mvinverse_ros.model import load_model

    device = resolve_device(params.device)
    loaded = load_model(checkpoint=params.checkpoint, preset=params.preset, device=str(device))
    long_side = params.long_side or loaded.native_long_side
    backend = _onnx_backend(params, loaded, long_side) if params.backend == "onnxruntime" else None
    engine = StreamingEngine(
        None if backend else loaded.model, device=str(device), dtype=params.dtype, long_side=long_side,
        normal_convention=params.normal_convention, backend=backend,
    )
    return engine, loaded


def _onnx_backend(params: ModelParams, loaded: LoadedModel, long_side: int):
    """The ONNX Runtime backend for `loaded`'s export in model.onnx_dir (see engine_from_params)."""
    from mvinverse_ros.engine.export import ExportError, file_sha256
    from mvinverse_ros.engine.onnx_backend import OnnxRuntimeBackend

    if params.dtype != "fp32":
        raise ExportError(f"model.dtype {params.dtype} is for the torch backend; ONNX Runtime runs the fp32 export "
                          "(set model.dtype: fp32; model.trt_fp16: true for fp16 TensorRT engines)")
    backend = OnnxRuntimeBackend(params.onnx_dir, params.onnx_providers, loaded.preset, long_side,
                                 params.trt_fp16, params.trt_cache_dir)
    expected = backend.manifest.checkpoint_sha256
    actual = file_sha256(loaded.source) if loaded.trained else ""
    if expected != actual:
        raise ExportError(f"{params.onnx_dir} was exported from other weights than {loaded.source} "
                          f"(SHA-256 {expected[:12] or 'untrained'} vs {actual[:12] or 'untrained'}); export again: "
                          f"`mvinverse-ros export onnx {params.onnx_dir} --checkpoint {loaded.source}`")
    return backend


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

    Raises:
        ValueError: `fusion.load_map` names a file that is not a saved map of this voxel size
            (ConversionError, a ValueError, for an unreadable file).

    Attributes:
        counters: 'frames', 'windows', 'published', 'fused' and, for published frames that could
            not be fused, 'no_depth', 'no_camera_info', 'no_pose'.
    """

    def __init__(self, params: PerceptionParams, engine: WindowEngine) -> None:
        self.params = params
        self.engine = engine
        self._policies: dict[str, WindowPolicy] = {}
        self._map_lock = threading.Lock()
        self._process_lock = threading.Lock()  # process() vs reset() from another thread
        load_map = params.fusion.load_map if params.fusion.enabled else ""
        self._loaded_map = read_map_ply(load_map) if load_map else None
        self._map = self._new_map()
        self.counters: Counter[str] = Counter()

    def _new_map(self) -> VoxelMap | None:
        fusion = self.params.fusion
        if not fusion.enabled:
            return None
        voxels = VoxelMap(fusion.voxel_size, fusion.extent, fusion.max_points)
        if self._loaded_map is not None:
            voxels.restore(self._loaded_map)
        return voxels

    def _policy(self, source: str) -> WindowPolicy:
        """The window policy of one camera (created on its first frame)."""
        if source not in self._policies:
            self._policies[source] = WindowPolicy(window_config(self.params.window))
        return self._policies[source]

    def update_params(self, params: PerceptionParams) -> None:
        """Take parameters changed while running (runtime.parameters.LIVE_PARAMETERS).

        Window thresholds, stride and publish, fusion's max_depth and pixel_stride and the cloud
        cadence are read at every use; held frames stay and the next frame and window use the new values.
        """
        self.params = params
        config = window_config(params.window)
        for policy in self._policies.values():
            policy.params = config

    def submit(self, frame: Frame) -> Window | None:
        """Offer a frame to its camera's window; returns a window when the network should run."""
        self.counters["frames"] += 1
        return self._policy(frame.source).push(frame)

    def process(self, window: Window) -> PipelineOutput:
        """Run the network on `window` and fuse its published frames that have depth, camera and pose."""
        with self._process_lock:
            return self._process(window)

    def _process(self, window: Window) -> PipelineOutput:
        result, dropped = finite_maps(self.engine.run(window))
        if dropped:
            self.counters["nonfinite_maps"] += dropped
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
            assert self._map is not None  # _process integrates only when fusion keeps a map
            self._map.integrate(observed)

    def cloud(self) -> MaterialCloud | None:
        """Snapshot of the fused map, or None when fusion is disabled."""
        if self._map is None:
            return None
        with self._map_lock:
            return self._map.cloud()

    def save_map(self, path: str | Path) -> bool:
        """Write the map (cloud and exact state, conversions.ply) to `path`; False when fusion is disabled.

        Raises:
            ConversionError: the file cannot be written.
        """
        if self._map is None:
            return False
        with self._map_lock:
            write_ply(path, self._map)
        return True

    def clear_map(self) -> None:
        """Empty the map (a loaded one too); windows and the engine's cache are kept."""
        with self._map_lock:
            if self._map is not None:
                self._map.clear()

    def window_counters(self) -> Counter[str]:
        """The window policies' counters summed over cameras."""
        total: Counter[str] = Counter()
        for policy in self._policies.values():
            total.update(policy.counters)
        return total

    def reset(self) -> None:
        """Forget held frames, the engine's cache and the map; counters keep counting."""
        with self._process_lock:
            for policy in self._policies.values():
                policy.reset()
            self.engine.reset()
            with self._map_lock:
                self._map = self._new_map()
