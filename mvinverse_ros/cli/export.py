"""`mvinverse-ros export onnx`: the network as ONNX graphs for model.backend: onnxruntime."""
from __future__ import annotations

import argparse
import re

from mvinverse_ros.cli.common import EXIT_CODES, add_params_arguments, params_from_args
from mvinverse_ros.params import ParameterError


def _image_size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (height, width)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or not all(int(side) > 0 for side in match.groups()):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}")
    return int(match.group(2)), int(match.group(1))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `export onnx`."""
    parser = subparsers.add_parser("export", help="export the network for another runtime", epilog=EXIT_CODES)
    formats = parser.add_subparsers(dest="format", required=True)
    onnx = formats.add_parser(
        "onnx", help="ONNX graphs (frame, window, heads) + manifest.json for model.backend: onnxruntime",
        description="Writes the per-frame graph (encoder, ResNeXt detail, decoder block 0, block 1's q/k/v), the "
        "per-window decoder (2..16 frames) and the per-frame heads for one camera image size and network long side, "
        "so the streaming engine keeps its per-frame cache. Weights past 2 GB go to <graph>.onnx.data.",
        epilog=EXIT_CODES,
    )
    onnx.add_argument("out_dir", help="output folder (model.onnx_dir)")
    onnx.add_argument("--image-size", type=_image_size, default=(480, 640), metavar="WIDTHxHEIGHT",
                      help="camera image size the graphs are made for (default 640x480)")
    add_params_arguments(onnx, ("--checkpoint", "--preset", "--long-side"))
    onnx.set_defaults(func=export_onnx_command)


def export_onnx_command(args: argparse.Namespace) -> int:
    """Load the weights as `model.*` says and export them; ExportError / ModelError reach main() (exit 1)."""
    model_params = params_from_args(args).model
    if model_params.backend != "torch":
        raise ParameterError("export reads the torch weights; drop --set model.backend")
    from mvinverse_ros.engine.export import export_onnx, file_sha256
    from mvinverse_ros.engine.preprocess import network_size
    from mvinverse_ros.model import load_model

    loaded = load_model(checkpoint=model_params.checkpoint, preset=model_params.preset, device="cpu")
    long_side = model_params.long_side or loaded.native_long_side
    size = network_size(*args.image_size, long_side)
    manifest = export_onnx(loaded.model, args.out_dir, loaded.preset, long_side, size,
                           file_sha256(loaded.source) if loaded.trained else "")
    print(f"wrote {args.out_dir}: {loaded.preset} from {loaded.source}, input {size[0]}x{size[1]}, "
          f"opset {manifest.opset}")
    return 0
