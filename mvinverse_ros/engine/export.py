"""ONNX export of MVInverse, split the way the streaming engine runs it.

Three graphs keep the engine's savings: `frame` (encoder, ResNeXt detail, decoder block 0 and block
1's queries/keys/values: the work cached per frame), `window` (the decoder after block 0 for a
dynamic number of frames, computing the last global block only for the published frames, given
block 1's attention the engine assembles from cached frame pairs) and `heads` (the DPT heads of the
published frames). Every graph is made for one network input size, recorded in the manifest.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.export import Dim

from mvinverse_ros.model import MVInverse
from mvinverse_ros.model.mvinverse import HEADS

MANIFEST = "manifest.json"
GRAPHS = ("frame", "window", "heads")
OPSET = 18
MAX_WINDOW_FRAMES = 16
# A single protobuf holds at most 2 GB; larger weights go to one external data file per graph.
_EXTERNAL_DATA_BYTES = 2**31 - 2**26


class ExportError(ValueError):
    """An export that cannot be made or does not fit what is asked of it; the message says why."""


@dataclass(frozen=True)
class ExportManifest:
    """What an ONNX export was made for; the backend refuses to run it for anything else."""

    preset: str
    long_side: int
    input_size: tuple[int, int]          # (H, W) of the network input
    opset: int
    checkpoint_sha256: str                # "" for untrained weights
    torch_version: str
    graphs: dict[str, dict[str, list[str]]]  # graph name -> {"inputs": [...], "outputs": [...]}

    def write(self, out_dir: Path) -> None:
        """Write as OUT_DIR/manifest.json."""
        (out_dir / MANIFEST).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @staticmethod
    def read(out_dir: str | Path) -> "ExportManifest":
        """The manifest of an export folder.

        Raises:
            ExportError: missing or unreadable manifest.
        """
        path = Path(out_dir) / MANIFEST
        try:
            raw = json.loads(path.read_text())
            raw["input_size"] = tuple(raw["input_size"])
            return ExportManifest(**raw)
        except FileNotFoundError:
            raise ExportError(f"{path} not found; make it with `mvinverse-ros export onnx {out_dir}`") from None
        except (ValueError, TypeError, KeyError) as err:
            raise ExportError(f"{path} is not an export manifest ({err}); export again") from None


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


class FrameGraph(nn.Module):
    """images [F, 3, H, W] -> decoded [F, R + P, C], detail_0..3, q, k, v [F, heads, R + P, head_dim]."""

    def __init__(self, model: MVInverse) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        encoded = self.model.encode_frames(images)
        decoded = self.model.decode_start(encoded.tokens, encoded.patch_grid)
        return (decoded, *encoded.detail, *self.model.first_global_inputs(decoded, encoded.patch_grid))


class WindowGraph(nn.Module):
    """(after_block0 [1, N, R + P, C], first_attention [1, N, heads, R + P, d], publish [Q]) -> 4 pairs [1, Q, ...]."""

    def __init__(self, model: MVInverse, grid: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.grid = grid

    def forward(self, after_block0: torch.Tensor, first_attention: torch.Tensor, publish: torch.Tensor):
        return tuple(self.model.decode_rest(after_block0, self.grid, output_frames=publish,
                                            first_attention=first_attention))


class HeadsGraph(nn.Module):
    """(pair_0..3 [Q, R + P, 2C], detail_0..3 [Q, ...]) -> albedo, metallic, roughness, normal, shading [Q, H, W, C]."""

    def __init__(self, model: MVInverse, size: tuple[int, int]) -> None:
        super().__init__()
        self.model = model
        self.size = size

    def forward(self, pairs: list[torch.Tensor], detail: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        outputs = self.model.run_heads(pairs, detail, self.size)
        return tuple(outputs[name] for name in HEADS)


def _graph_examples(model: MVInverse, size: tuple[int, int]) -> dict[str, tuple]:
    """Per graph: (module, example inputs of 2 frames, input names, output names, dynamic shapes)."""
    config = model.config
    frames = Dim("frames", min=1, max=MAX_WINDOW_FRAMES)
    window = Dim("window", min=2, max=MAX_WINDOW_FRAMES)
    published = Dim("published", min=1, max=MAX_WINDOW_FRAMES)
    images = torch.rand(2, 3, *size)
    with torch.no_grad():
        frame_out = FrameGraph(model)(images)
    decoded, detail, (q, _, _) = frame_out[0], list(frame_out[1:-3]), frame_out[-3:]
    stages = len(detail)
    after_block0 = decoded.unsqueeze(0)
    first_attention = torch.rand_like(q).unsqueeze(0)
    publish = torch.tensor([0, 1])
    with torch.no_grad():
        pairs = WindowGraph(model, (size[0] // config.patch_size, size[1] // config.patch_size))(
            after_block0, first_attention, publish)
    pair_names = [f"pair_{i}" for i in range(len(pairs))]
    detail_names = [f"detail_{i}" for i in range(stages)]
    grid = (size[0] // config.patch_size, size[1] // config.patch_size)
    return {
        "frame": (FrameGraph(model), (images,), ["images"], ["decoded", *detail_names, "q", "k", "v"],
                  ({0: frames},)),
        "window": (WindowGraph(model, grid), (after_block0, first_attention, publish),
                   ["after_block0", "first_attention", "publish"], pair_names,
                   ({1: window}, {1: window}, {0: published})),
        "heads": (HeadsGraph(model, size), ([p[0] for p in pairs], detail), [*pair_names, *detail_names],
                  list(HEADS), ([{0: published}] * len(pairs), [{0: published}] * stages)),
    }


def export_onnx(
    model: MVInverse, out_dir: str | Path, preset: str, long_side: int, size: tuple[int, int],
    checkpoint_sha256: str = "",
) -> ExportManifest:
    """Write the three graphs (frame.onnx, window.onnx, heads.onnx) and manifest.json into out_dir.

    Uses torch's dynamo exporter (torch.export + onnxscript); examples have 2 frames because the
    exporter specialises dynamic axes whose example size is 0 or 1. Weights past 2 GB go to
    `<graph>.onnx.data` beside each graph.

    Raises:
        ExportError: the model cannot be exported at this size.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    graphs = {}
    for name, (module, example, inputs, outputs, dynamic) in _graph_examples(model, size).items():
        target = out / f"{name}.onnx"
        for stale in (target, out / f"{name}.onnx.data"):
            stale.unlink(missing_ok=True)
        weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
        try:
            with warnings.catch_warnings():  # exporter internals (deprecations, axis renames) the user cannot act on
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    module, example, dynamo=True, input_names=inputs, output_names=outputs, dynamic_shapes=dynamic,
                    opset_version=OPSET, optimize=True, verbose=False,
                )
            if program is None:
                raise ExportError(f"torch.onnx.export returned no program for the {name} graph")
            program.save(str(target), external_data=weight_bytes > _EXTERNAL_DATA_BYTES)
        except Exception as err:  # the exporter raises many types; the message is what the user needs
            raise ExportError(f"ONNX export of the {name} graph failed: {type(err).__name__}: {err}") from err
        graphs[name] = {"inputs": inputs, "outputs": outputs}
    manifest = ExportManifest(preset, long_side, (size[0], size[1]), OPSET, checkpoint_sha256, torch.__version__,
                              graphs)
    manifest.write(out)
    return manifest
