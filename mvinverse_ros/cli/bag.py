"""`mvinverse-ros bag process` and `mvinverse-ros bag import-rgbd`."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mvinverse_ros.bag.errors import BagError
from mvinverse_ros.bag.writer import STORAGES
from mvinverse_ros.params import ParameterError, load_params, parse_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `bag process` and `bag import-rgbd`."""
    bag = subparsers.add_parser("bag", help="offline rosbag2 processing without ROS")
    commands = bag.add_subparsers(dest="bag_command", required=True)

    process = commands.add_parser(
        "process", help="run the perception pipeline over a bag, write the node's topics to a new bag",
        description="Reads IN (rosbag2 directory, sqlite3 or MCAP, or a single .mcap file) and writes OUT "
                    "(a new rosbag2, MCAP unless --set bag.storage=sqlite3) with the node's topics, plus "
                    "OUT.ply (fused material cloud) and OUT.png (contact sheet of a few frames' maps).",
    )
    process.add_argument("input", type=Path, help="input bag")
    process.add_argument("output", type=Path, help="output bag directory (must not exist)")
    process.add_argument("--params-file", type=Path, help="node params file (YAML, ros__parameters) over the defaults")
    process.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                         help="override one parameter, e.g. --set window.size=8 (repeatable)")
    weights = process.add_mutually_exclusive_group()
    weights.add_argument("--preset", help="untrained architecture preset (same as --set model.preset=...)")
    weights.add_argument("--checkpoint", help="weights: .pt/.pth/.safetensors or a Hugging Face repo id")
    process.add_argument("--ply", type=Path, help="PLY path of the fused cloud (default OUT.ply)")
    process.add_argument("--contact-sheet", type=Path, help="PNG path of the contact sheet (default OUT.png)")
    process.add_argument("--no-progress", action="store_true", help="no progress bar")
    process.set_defaults(func=run_process)

    rgbd = commands.add_parser(
        "import-rgbd", help="turn a 7-Scenes or TUM RGB-D folder into a rosbag2",
        description="Writes /camera/color/image_raw (rgb8, or .../compressed JPEG), /camera/depth/image_raw "
                    "(16UC1 mm), /camera/color/camera_info, /tf (odom -> camera_link) and latched /tf_static "
                    "(camera_link -> camera_color_optical_frame).",
    )
    rgbd.add_argument("folder", type=Path, help="dataset folder")
    rgbd.add_argument("output", type=Path, help="output bag directory (must not exist)")
    rgbd.add_argument("--fps", type=float, default=10.0,
                      help="frame rate stamped on 7-Scenes frames (default 10; TUM keeps its stamps)")
    rgbd.add_argument("--compressed", action="store_true", help="colour as CompressedImage (the dataset's JPEG bytes)")
    rgbd.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="bag storage (default mcap)")
    rgbd.add_argument("--format", choices=("auto", "7scenes", "tum"), default="auto", dest="fmt")
    rgbd.add_argument("--intrinsics", type=_intrinsics, help="fx,fy,cx,cy overriding the dataset's calibration")
    rgbd.set_defaults(func=run_import)


def _intrinsics(text: str) -> tuple[float, float, float, float]:
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"intrinsics must look like 585,585,320,240, got {text!r}") from err
    return fx, fy, cx, cy


def run_import(args: argparse.Namespace) -> int:
    from mvinverse_ros.bag.importer import import_rgbd

    try:
        summary = import_rgbd(args.folder, args.output, fps=args.fps, compressed=args.compressed,
                              storage=args.storage, fmt=args.fmt, intrinsics=args.intrinsics)
    except BagError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{summary.format}: {summary.frames} frames, {summary.poses} poses, {summary.duration_s:.1f} s "
          f"-> {summary.path}")
    return 0


def run_process(args: argparse.Namespace) -> int:
    from mvinverse_ros.bag.process import BagProcessor
    from mvinverse_ros.pipeline import engine_from_params

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        overrides = parse_overrides(args.set)
        if args.preset:
            overrides["model.preset"] = args.preset
        if args.checkpoint:
            overrides["model.checkpoint"] = args.checkpoint
        params = load_params(args.params_file, overrides)
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    output = args.output
    ply = args.ply or output.with_name(output.name + ".ply")
    sheet = args.contact_sheet or output.with_name(output.name + ".png")
    engine, loaded = engine_from_params(params.model)
    if not loaded.trained:
        print(f"warning: the '{loaded.preset}' model has UNTRAINED (random) weights; the maps are meaningless. "
              "Pass --checkpoint with trained weights.", file=sys.stderr)
    print(f"model: {loaded.preset} from {loaded.source}", file=sys.stderr)
    try:
        summary = BagProcessor(params, engine).run(args.input, output, ply, sheet, progress=not args.no_progress)
    except BagError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in summary.lines():
        print(line)
    if not loaded.trained:
        print(f"note: maps came from UNTRAINED '{loaded.preset}' weights", file=sys.stderr)
    return 130 if summary.interrupted else 0
