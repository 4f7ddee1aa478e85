"""`mvinverse-ros convert`: any supported checkpoint -> a checked .safetensors with its preset."""
from __future__ import annotations

import argparse

from mvinverse_ros.cli.common import EXIT_CODES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `convert`."""
    parser = subparsers.add_parser(
        "convert",
        help="convert a .pt/.pth/.bin/.safetensors checkpoint or Hugging Face repo id to .safetensors",
        description="Strictly checks the weights against the architecture (names, shapes, dtypes, finite values) "
        "and writes safetensors whose metadata records the preset and the size the weights were trained at.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("source", help="input checkpoint path or Hugging Face repo id (e.g. maddog241/mvinverse)")
    parser.add_argument("output", help="output .safetensors path")
    parser.add_argument("--preset", default=None, help="architecture if it cannot be read from the file or inferred")
    parser.set_defaults(func=convert_command)


def convert_command(args: argparse.Namespace) -> int:
    """Run the sub-command; a ModelError reaches main() (exit 1)."""
    from mvinverse_ros.model.checkpoint import (
        LONG_SIDE_KEY,
        infer_preset,
        model_from_state_dict,
        native_long_side,
        read_state_dict,
        resolve_checkpoint,
        save_checkpoint,
    )
    from mvinverse_ros.model.errors import ModelError

    path = resolve_checkpoint(args.source)
    state_dict, metadata = read_state_dict(path)
    preset = args.preset or metadata.get("preset") or infer_preset(state_dict)
    if preset is None:
        raise ModelError(f"{path}: the weights match no preset; pass --preset to see which keys differ")
    metadata_kept = {"converted_from": str(args.source)}
    if LONG_SIDE_KEY in metadata:
        metadata_kept[LONG_SIDE_KEY] = str(native_long_side(metadata, path, preset))
    model = model_from_state_dict(state_dict, preset)
    save_checkpoint(model, args.output, preset, metadata_kept)
    print(f"wrote {args.output} (preset {preset}, {sum(p.numel() for p in model.parameters()):,} parameters)")
    return 0
