"""Windowed inference that pays for each frame's per-frame work once.

In a sliding window each frame is seen by several consecutive windows. The DINOv2 encoder,
the ResNeXt features and decoder block 0 (attention within the frame) do not depend on the other
frames, so their outputs are cached per frame (keyed by source, stamp and network size) and
dropped when the frame leaves its window. Block 1, the first global block, attends from every
frame to every frame, but its queries, keys and values come from block 0's per-frame output, so
the attention between two frames is cached per frame pair: a window that adds one frame to N - 1
seen ones computes 2N - 1 frame pairs, not N^2 (layers.partial_attention merges them exactly).
The other decoder blocks run over the whole window every time, except the last global block,
which computes only the published frames' tokens (all frames still serve as its keys and
values); the DPT heads run only for the published frames. The result equals a full recompute of
the window (see tests/test_engine_streaming.py).

The network itself runs behind a backend: `TorchBackend` (eager torch, the default) or
engine.onnx_backend.OnnxRuntimeBackend (the graphs of engine.export); the cache rules are the engine's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from mvinverse_ros.engine.preprocess import (
    InferenceError,
    autocast,
    images_to_tensor,
    network_size,
    outputs_to_maps,
    resolve_device,
)
from mvinverse_ros.geometry.normals import to_optical
from mvinverse_ros.model import MVInverse
from mvinverse_ros.model.layers import attention_partials, merge_partials
from mvinverse_ros.types import Frame, MaterialMaps, Window, WindowResult

CacheKey = tuple[str, int, tuple[int, int]]


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass
class FrameWork:
    """The window-independent work of one frame (the encoder tokens themselves are not needed again).

    decoded: decoder block 0 output [R + P, C]; detail: the four ResNeXt maps, each [C_s, h_s, w_s];
    first_global: block 1's queries, keys and values, each [heads, R + P, head_dim].
    """

    decoded: torch.Tensor
    detail: list[torch.Tensor]
    first_global: tuple[torch.Tensor, torch.Tensor, torch.Tensor]

    @property
    def nbytes(self) -> int:
        return _nbytes((self.decoded, *self.detail, *self.first_global))


@dataclass
class PairAttention:
    """Block 1's attention from one frame's queries to another frame's keys alone.

    out: [heads, R + P, head_dim]; lse: its log softmax normaliser [heads, R + P] (float32).
    """

    out: torch.Tensor
    lse: torch.Tensor


class NetworkBackend(Protocol):
    """The three stages of the network the engine runs; tensors in and out are on `device`."""

    device: torch.device
    patch_size: int

    def frame_work(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """images [F, 3, H, W] -> (block 0 output [F, R + P, C], ResNeXt maps, block 1's q, k, v)."""

    def decode(self, after_block0: torch.Tensor, first_attention: torch.Tensor, publish: list[int],
               grid: tuple[int, int]) -> list[torch.Tensor]:
        """[N, R + P, C] and [N, heads, R + P, d] of a window -> the read pairs of `publish`, each [Q, R + P, 2C]."""

    def heads(self, pairs: list[torch.Tensor], detail: list[torch.Tensor], size: tuple[int, int]) -> dict:
        """Read pairs and ResNeXt maps of Q frames -> maps, each [Q, H, W, C]."""

    def prepare(self) -> None:
        """Make the network ready on its device (after `release`)."""

    def release(self) -> None:
        """Free device memory until the next `prepare`."""


class TorchBackend:
    """The network in eager torch (autocast by the engine).

    channels_last: one frame's five DPT heads 0.31 -> 0.18 s and its ResNeXt + patch embedding
    70 -> 53 ms on the CPU (476x630, small preset); the transformer has no 4D tensors.
    Modifies `model` in place.
    """

    def __init__(self, model: MVInverse, device: torch.device) -> None:
        self.device = device
        self.model = model.to(device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
        self.patch_size = model.config.patch_size
        self._on_device = True

    def frame_work(self, images):
        encoded = self.model.encode_frames(images)
        decoded = self.model.decode_start(encoded.tokens, encoded.patch_grid)
        return decoded, encoded.detail, self.model.first_global_inputs(decoded, encoded.patch_grid)

    def decode(self, after_block0, first_attention, publish, grid):
        pairs = self.model.decode_rest(
            after_block0.unsqueeze(0), grid, output_frames=publish, first_attention=first_attention.unsqueeze(0))
        return [pair[0] for pair in pairs]

    def heads(self, pairs, detail, size):
        return self.model.run_heads(pairs, detail, size)

    def prepare(self) -> None:
        if not self._on_device:
            self.model.to(self.device)
            self._on_device = True

    def release(self) -> None:
        self.model.to("cpu")
        self._on_device = self.device.type == "cpu"
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def window_network_size(frames: tuple[Frame, ...], long_side: int) -> tuple[int, int]:
    """The one network size of a window: that of its newest frame (the one a robot publishes)."""
    newest = frames[-1]
    return network_size(newest.height, newest.width, long_side)


class StreamingEngine:
    """Runs windows through an MVInverse model, reusing per-frame encoder work across windows.

    Args:
        model: an MVInverse (see mvinverse_ros.model) in eval mode, run by a TorchBackend; None
            when `backend` is given.
        device: 'auto' | 'cpu' | 'cuda' | 'cuda:N'.
        dtype: 'fp32' | 'bf16' | 'fp16' (autocast on the device).
        long_side: network input long side in pixels (capped at 1024, floored to multiples of 14);
            required, because a bare network does not know the size its weights were trained at
            (LoadedModel.native_long_side does).
        normal_convention: camera frame of the model's normal output ('opencv' = REP 103 optical,
            'opengl'); maps always leave in the optical frame.
        backend: what runs the network instead of eager torch (see NetworkBackend).

    Raises:
        InferenceError: for an unusable device or dtype.
        ValueError: for an unknown normal convention.
    """

    def __init__(
        self, model: MVInverse | None, *, long_side: int, device: str = "cpu", dtype: str = "fp32",
        normal_convention: str = "opencv", backend: NetworkBackend | None = None,
    ):
        self.device = resolve_device(device)
        self.dtype = dtype
        # Validate dtype and long side now rather than at the first window.
        autocast(self.device, dtype)
        network_size(1, 1, long_side)
        to_optical(np.zeros(3), normal_convention)
        self.long_side = long_side
        self.normal_convention = normal_convention
        if backend is None:
            if model is None:
                raise ValueError("StreamingEngine needs a model or a backend")
            backend = TorchBackend(model, self.device)
        self.backend = backend
        self.model = model
        self._cache: dict[CacheKey, FrameWork] = {}
        self._pairs: dict[tuple[CacheKey, CacheKey], PairAttention] = {}  # (query frame, key frame)
        self.counters = {
            "frames_encoded": 0, "cache_hits": 0, "evicted": 0, "windows": 0, "frame_pairs_attended": 0,
        }

    def run(self, window: Window) -> WindowResult:
        """Maps for the frames `window.publish` names, at each frame's own resolution.

        Raises:
            InferenceError: for an empty window, nothing to publish, or a bad image.
        """
        if not window.frames:
            raise InferenceError(f"window {window.window_id} has no frames")
        if not window.publish:
            raise InferenceError(f"window {window.window_id} publishes no frame")
        started = time.perf_counter()
        self.backend.prepare()
        size = window_network_size(window.frames, self.long_side)
        keys = [(frame.source, frame.stamp_ns, size) for frame in window.frames]
        self._evict(keep=set(keys), sources={frame.source for frame in window.frames})
        publish = list(window.publish)
        patch = self.backend.patch_size
        grid = (size[0] // patch, size[1] // patch)
        with torch.inference_mode(), autocast(self.device, self.dtype):
            work = self._frame_work(window.frames, keys, size)
            after_block0 = torch.stack([entry.decoded for entry in work])
            first_attention = self._first_global_attention(keys, work)
            pairs = self.backend.decode(after_block0, first_attention, publish, grid)
            detail = [torch.stack(stage) for stage in zip(*(work[i].detail for i in publish))]
            outputs = self.backend.heads(pairs, detail, size)
        maps = outputs_to_maps(
            outputs, [(window.frames[i].height, window.frames[i].width) for i in publish], self.normal_convention)
        self.counters["windows"] += 1
        return WindowResult(window=window, maps=tuple(maps), inference_seconds=time.perf_counter() - started)

    def _frame_work(self, frames: tuple[Frame, ...], keys: list[CacheKey], size: tuple[int, int]) -> list[FrameWork]:
        """FrameWork of every frame of the window; computes (in one batch) only that of frames not cached."""
        if len(set(keys)) != len(keys):
            raise InferenceError("window holds two frames with the same source and stamp; cannot tell them apart")
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        self.counters["cache_hits"] += len(keys) - len(missing)
        if missing:
            batch = images_to_tensor([frames[i].image for i in missing], size, self.device)
            decoded, detail, first_global = self.backend.frame_work(batch)
            for j, i in enumerate(missing):
                # clone: a row view would keep the whole batch's storage alive after its other frames leave
                self._cache[keys[i]] = FrameWork(
                    decoded[j].clone(), [stage[j].clone() for stage in detail],
                    (first_global[0][j].clone(), first_global[1][j].clone(), first_global[2][j].clone()),
                )
            self.counters["frames_encoded"] += len(missing)
        return [self._cache[key] for key in keys]

    def _first_global_attention(self, keys: list[CacheKey], work: list[FrameWork]) -> torch.Tensor:
        """Block 1's attention result of every frame [N, heads, R + P, head_dim], computing only unseen frame pairs."""
        count = len(keys)
        missing = [(i, j) for i in range(count) for j in range(count) if (keys[i], keys[j]) not in self._pairs]
        for start in range(0, len(missing), count):  # at most N pairs at a time bounds the stacked copies
            chunk = missing[start:start + count]
            out, lse = attention_partials(
                torch.stack([work[i].first_global[0] for i, _ in chunk]),
                torch.stack([work[j].first_global[1] for _, j in chunk]),
                torch.stack([work[j].first_global[2] for _, j in chunk]),
            )
            for row, (i, j) in enumerate(chunk):
                self._pairs[keys[i], keys[j]] = PairAttention(out[row].clone(), lse[row].clone())
        self.counters["frame_pairs_attended"] += len(missing)
        merged = []
        for query in keys:
            pairs = [self._pairs[query, key] for key in keys]
            merged.append(merge_partials(torch.stack([p.out for p in pairs]), torch.stack([p.lse for p in pairs])))
        return torch.stack(merged)

    def _evict(self, keep: set[CacheKey], sources: set[str]) -> None:
        """Drop cached frames of these sources that are not in the current window (other cameras keep theirs)."""
        stale = [key for key in self._cache if key[0] in sources and key not in keep]
        for key in stale:
            del self._cache[key]
        self._pairs = {
            pair: entry for pair, entry in self._pairs.items() if pair[0] in self._cache and pair[1] in self._cache
        }
        self.counters["evicted"] += len(stale)

    @property
    def cached_frames(self) -> int:
        """How many frames' per-frame work is held."""
        return len(self._cache)

    @property
    def cache_bytes(self) -> int:
        """Memory held by the cached per-frame and per-frame-pair work."""
        return sum(entry.nbytes for entry in self._cache.values()) + sum(
            _nbytes((entry.out, entry.lse)) for entry in self._pairs.values()
        )

    def reset(self) -> None:
        """Forget every cached frame (e.g. after a stream restart)."""
        self._cache.clear()
        self._pairs.clear()

    def release(self) -> None:
        """Drop caches and free the backend's device memory (node deactivation).

        The next `run` makes the backend ready again.
        """
        self.reset()
        self.backend.release()


def full_recompute(
    model: MVInverse, window: Window, long_side: int, device: str = "cpu", dtype: str = "fp32",
    normal_convention: str = "opencv",
) -> list[MaterialMaps]:
    """The official one-shot path: every frame through the whole network (all heads), no cache.

    The reference the engine's cached path is checked and benchmarked against; returns the
    MaterialMaps of the published frames, post-processed exactly as `StreamingEngine.run` does.
    """
    resolved = resolve_device(device)
    size = window_network_size(window.frames, long_side)
    with torch.inference_mode(), autocast(resolved, dtype):
        images = images_to_tensor([frame.image for frame in window.frames], size, resolved)
        outputs = model(images.unsqueeze(0))
    publish = list(window.publish)
    return outputs_to_maps(
        {name: value[0, publish] for name, value in outputs.items()},
        [(window.frames[i].height, window.frames[i].width) for i in publish],
        normal_convention,
    )
