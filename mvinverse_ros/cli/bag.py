"""`mvinverse-ros bag process` and `mvinverse-ros bag import-rgbd`."""
from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from mvinverse_ros.bag.writer import STORAGES
from mvinverse_ros.cli.common import EXIT_CODES, MODEL_FLAGS, add_params_arguments, load_engine, params_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `bag process` and `bag import-rgbd`."""
    bag = subparsers.add_parser("bag", help="offline rosbag2 processing without ROS", epilog=EXIT_CODES)
    commands = bag.add_subparsers(dest="bag_command", required=True)

    process = commands.add_parser(
        "process", help="run the perception pipeline over a bag, write the node's topics to a new bag",
        description="Reads IN (rosbag2 directory, sqlite3 or MCAP, or a single .mcap file) and writes OUT "
                    "(a new rosbag2, MCAP unless --set bag.storage=sqlite3) with the node's topics, plus "
                    "OUT.ply (fused material cloud) and OUT.png (contact sheet of a few frames' maps). "
                    "Parameters are checked before the bag is opened.",
        epilog=EXIT_CODES,
    )
    process.add_argument("input", type=Path, help="input bag")
    process.add_argument("output", type=Path, help="output bag directory (must not exist)")
    add_params_arguments(process, (*MODEL_FLAGS, "--window"))
    process.add_argument("--ply", type=Path, help="PLY path of the fused cloud (default OUT.ply)")
    process.add_argument("--contact-sheet", type=Path, help="PNG path of the contact sheet (default OUT.png)")
    process.add_argument("--no-progress", action="store_true", help="no progress bar")
    process.set_defaults(func=run_process)

    rgbd = commands.add_parser(
        "import-rgbd", help="turn a 7-Scenes or TUM RGB-D folder into a rosbag2",
        description="Writes /camera/color/image_raw (rgb8, or .../compressed JPEG), /camera/depth/image_raw "
                    "(16UC1 mm), /camera/color/camera_info, /tf (odom -> camera_link) and latched /tf_static "
                    "(camera_link -> camera_color_optical_frame).",
        epilog=EXIT_CODES,
    )
    rgbd.add_argument("folder", type=Path, help="dataset folder")
    rgbd.add_argument("output", type=Path, help="output bag directory (must not exist)")
    rgbd.add_argument("--fps", type=_positive_finite, default=10.0,
                      help="frame rate stamped on 7-Scenes frames (default 10; TUM keeps its stamps)")
    rgbd.add_argument("--compressed", action="store_true", help="colour as CompressedImage (the dataset's JPEG bytes)")
    rgbd.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="bag storage (default mcap)")
    rgbd.add_argument("--format", choices=("auto", "7scenes", "tum"), default="auto", dest="fmt")
    rgbd.add_argument("--intrinsics", type=_intrinsics, help="fx,fy,cx,cy overriding the dataset's calibration")
    rgbd.set_defaults(func=run_import)

    recover = commands.add_parser(
        "recover", help="copy what a killed `bag process` left in its output into a new, complete bag",
        description="A process killed outright (SIGKILL) leaves OUT without metadata.yaml and, for MCAP, without "
                    "a footer. Everything up to the last window written is copied to a new bag.",
        epilog=EXIT_CODES,
    )
    recover.add_argument("broken", type=Path, help="the output directory of the killed run")
    recover.add_argument("output", type=Path, help="new bag directory (must not exist)")
    recover.set_defaults(func=run_recover)

    compare = commands.add_parser(
        "compare", help="whether two bags hold the same messages (topics, types, serialized bytes in order)",
        description="Log times and storage are not compared. Prints one line per topic that differs.",
        epilog="exit codes: 0 the same messages, 1 different (or unreadable), 2 bad usage",
    )
    compare.add_argument("first", type=Path, help="a bag")
    compare.add_argument("second", type=Path, help="another bag")
    compare.set_defaults(func=run_compare)


def _positive_finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _intrinsics(text: str) -> tuple[float, float, float, float]:
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"intrinsics must look like 585,585,320,240, got {text!r}") from err
    if not (all(math.isfinite(v) for v in (fx, fy, cx, cy)) and fx > 0 and fy > 0):
        raise argparse.ArgumentTypeError(f"intrinsics need finite values and positive fx, fy, got {text!r}")
    return fx, fy, cx, cy


def run_recover(args: argparse.Namespace) -> int:
    from mvinverse_ros.bag.typestore import typestore_with_project_types
    from mvinverse_ros.bag.writer import recover_bag

    counts = recover_bag(args.broken, args.output, typestore_with_project_types())
    print(f"recovered {sum(counts.values())} messages -> {args.output}: "
          + ", ".join(f"{t} {n}" for t, n in counts.items()))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from mvinverse_ros.bag.compare import bag_differences

    differences = bag_differences(args.first, args.second)
    for line in differences:
        print(line)
    if not differences:
        print(f"{args.first} and {args.second} hold the same messages")
    return 1 if differences else 0


def run_import(args: argparse.Namespace) -> int:
    from mvinverse_ros.bag.importer import import_rgbd

    summary = import_rgbd(args.folder, args.output, fps=args.fps, compressed=args.compressed,
                          storage=args.storage, fmt=args.fmt, intrinsics=args.intrinsics)
    print(f"{summary.format}: {summary.frames} frames, {summary.poses} poses, {summary.duration_s:.1f} s "
          f"-> {summary.path}" + (f"; {summary.skipped} unreadable frames skipped" if summary.skipped else ""))
    return 0


def run_process(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    from mvinverse_ros.bag.process import BagProcessor

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    output = args.output
    ply = args.ply or output.with_name(output.name + ".ply")
    sheet = args.contact_sheet or output.with_name(output.name + ".png")
    engine, loaded = load_engine(params.model)
    summary = BagProcessor(params, engine).run(args.input, output, ply, sheet, progress=not args.no_progress)
    for line in summary.lines():
        print(line)
    warning = loaded.untrained_warning()
    if warning:  # again below the progress bar and summary, which pushed the first one out of sight
        print(f"warning: {warning}", file=sys.stderr)
    if summary.error:
        print(f"error: {summary.error} (everything before it was written)", file=sys.stderr)
        return 1
    return 130 if summary.interrupted else 0
