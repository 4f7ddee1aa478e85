"""The streaming engine's network through ONNX Runtime (CPU, CUDA or TensorRT execution providers).

Runs the three graphs of engine.export behind the engine's NetworkBackend protocol, so the per-frame
cache, the frame-pair attention and the window rules stay the engine's. Tensors cross as CPU numpy
arrays; everything that can be checked before the first frame (files, preset, long side,
providers) is checked when the backend is made.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mvinverse_ros.engine.export import GRAPHS, ExportError, ExportManifest
from mvinverse_ros.engine.preprocess import InferenceError
from mvinverse_ros.model.config import preset_config
from mvinverse_ros.model.mvinverse import HEADS

TENSORRT = "TensorrtExecutionProvider"


def provider_options(providers: list[str], trt_fp16: bool = False, trt_cache_dir: str = "") -> list[tuple[str, dict]]:
    """(provider, options) pairs for an ORT session; TensorRT gets fp16 and its engine cache.

    Raises:
        ExportError: no provider, or one this onnxruntime build does not have.
    """
    import onnxruntime

    available = onnxruntime.get_available_providers()
    missing = [name for name in providers if name not in available]
    if not providers or missing:
        raise ExportError(
            f"ONNX Runtime providers {missing or providers} are not available in this onnxruntime build "
            f"(available: {', '.join(available)}); set model.onnx_providers to some of those, or install "
            "onnxruntime-gpu (CUDA, TensorRT)"
        )
    chosen = []
    for name in providers:
        options: dict[str, bool | str] = {}
        if name == TENSORRT:
            options = {"trt_fp16_enable": trt_fp16}
            if trt_cache_dir:
                Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
                options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(trt_cache_dir),
                               trt_timing_cache_enable=True, trt_timing_cache_path=str(trt_cache_dir))
        chosen.append((name, options))
    return chosen


class OnnxRuntimeBackend:
    """An export folder's graphs in ONNX Runtime sessions.

    Args:
        onnx_dir: folder written by engine.export.export_onnx.
        providers: ORT execution providers in order of preference.
        preset, long_side: what the engine runs; the export must have been made for them.
        trt_fp16, trt_cache_dir: TensorRT options (see provider_options).

    Raises:
        ExportError: a missing folder, manifest or graph, an export made for another preset or
            long side, or an unavailable provider; the message says what to do.
    """

    def __init__(self, onnx_dir: str | Path, providers: list[str], preset: str, long_side: int,
                 trt_fp16: bool = False, trt_cache_dir: str = "") -> None:
        import onnxruntime

        folder = Path(onnx_dir)
        if not str(onnx_dir) or not folder.is_dir():
            raise ExportError(f"model.onnx_dir {str(onnx_dir)!r} is not a folder; make one with "
                              f"`mvinverse-ros export onnx DIR --preset {preset} --long-side {long_side}`")
        self.manifest = ExportManifest.read(folder)
        again = f"export again: `mvinverse-ros export onnx {folder} --preset {preset} --long-side {long_side}`"
        if self.manifest.preset != preset or self.manifest.long_side != long_side:
            raise ExportError(f"{folder} was exported for preset {self.manifest.preset!r} at long side "
                              f"{self.manifest.long_side}, not {preset!r} at {long_side}; {again}")
        options = provider_options(providers, trt_fp16, trt_cache_dir)
        session_options = onnxruntime.SessionOptions()
        session_options.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's
        self.sessions = {}
        for name in GRAPHS:
            path = folder / f"{name}.onnx"
            if not path.is_file():
                raise ExportError(f"{path} is missing; {again}")
            self.sessions[name] = onnxruntime.InferenceSession(
                str(path), session_options, providers=[p for p, _ in options], provider_options=[o for _, o in options])
        self.providers = self.sessions["frame"].get_providers()
        self.device = torch.device("cpu")
        self.patch_size = preset_config(preset).patch_size
        self.input_size = tuple(self.manifest.input_size)
        self._detail_count = sum(name.startswith("detail_") for name in self.manifest.graphs["frame"]["outputs"])

    def _run(self, graph: str, feeds: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        arrays = {name: np.ascontiguousarray(tensor.detach().cpu().numpy()) for name, tensor in feeds.items()}
        return [torch.from_numpy(out) for out in self.sessions[graph].run(None, arrays)]

    def frame_work(self, images):
        """See NetworkBackend.frame_work.

        Raises:
            InferenceError: images of another size than the export's.
        """
        if tuple(images.shape[-2:]) != self.input_size:
            size = "x".join(map(str, images.shape[-2:]))
            raise InferenceError(
                f"the ONNX export takes {self.input_size[0]}x{self.input_size[1]} inputs, this window needs {size}; "
                "export again with --image-size of this camera (and the same --long-side)")
        outputs = self._run("frame", {"images": images.float()})
        decoded, detail, first_global = outputs[0], outputs[1:1 + self._detail_count], outputs[-3:]
        return decoded, detail, tuple(first_global)

    def decode(self, after_block0, first_attention, publish, grid):
        """See NetworkBackend.decode."""
        pairs = self._run("window", {
            "after_block0": after_block0.float().unsqueeze(0), "first_attention": first_attention.float().unsqueeze(0),
            "publish": torch.tensor(publish, dtype=torch.int64),
        })
        return [pair[0] for pair in pairs]

    def heads(self, pairs, detail, size):
        """See NetworkBackend.heads."""
        feeds = {f"pair_{i}": pair.float() for i, pair in enumerate(pairs)}
        feeds.update({f"detail_{i}": stage.float() for i, stage in enumerate(detail)})
        return dict(zip(HEADS, self._run("heads", feeds)))

    def prepare(self) -> None:
        """Sessions stay ready; nothing to do."""

    def release(self) -> None:
        """Sessions keep their memory (ORT has no per-session device release); nothing to do."""
