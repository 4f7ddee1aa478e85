"""`mvinverse-ros infer`: material maps for a folder of images, window by window.

The folder is cut into consecutive windows of `window.size` images (the last window is filled up
with earlier images, which are served from the engine's cache and not written twice), so any
number of images runs in bounded memory with multi-view context. Undecodable files are
reported, counted and skipped; the other images are still processed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mvinverse_ros.cli.common import EXIT_CODES, MODEL_FLAGS, add_params_arguments, load_engine, params_from_args
from mvinverse_ros.datasets.errors import DatasetError
from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.datasets.images import IMAGE_SUFFIXES, image_paths, read_rgb
from mvinverse_ros.types import MAP_NAMES, Frame, Window
from mvinverse_ros.visualize import contact_sheet, map_to_rgb8

FOLDER_SOURCE = "folder"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `infer` sub-command (defaults from config/perception.yaml, read through the schema)."""
    parser = subparsers.add_parser(
        "infer",
        help="predict material maps for a folder of images",
        description="Writes <out>/<image>/<map>.png and .npy for every image, and <out>/contact_sheet.png. "
                    "Reads the model.* parameters and window.size (images per window).",
        epilog=EXIT_CODES,
    )
    parser.add_argument("image_dir", type=Path, help="folder of RGB images (sorted by name = window order)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    add_params_arguments(parser, (*MODEL_FLAGS, "--window"))
    parser.set_defaults(func=infer)


def folder_windows(count: int, size: int) -> list[tuple[range, int]]:
    """(frame indices, how many of the LAST ones are new) per window tiling `count` images.

    Tiles of `size`; a short remainder becomes a full window ending at the last image whose
    earlier frames were already published.
    """
    windows = []
    for start in range(0, count, size):
        end = min(start + size, count)
        windows.append((range(max(0, end - size), end), end - start))
    return windows


def write_maps(folder: Path, maps) -> None:
    """<map>.png (8-bit picture; grey maps single-channel) and <map>.npy (float32) per map."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in MAP_NAMES:
        values = getattr(maps, name)
        picture = map_to_rgb8(name, maps)
        picture = picture[..., 0] if values.ndim == 2 else cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(folder / f"{name}.png"), picture):
            raise OSError(f"Could not write {folder / f'{name}.png'}")
        np.save(folder / f"{name}.npy", values.astype(np.float32))


def infer(args: argparse.Namespace) -> int:
    """Run the sub-command; returns the process exit code.

    Raises:
        ParameterError: a value the schema refuses (exit 2, before anything is read).
        DatasetError: no image folder, no images, or none decodable (exit 1).
    """
    params = params_from_args(args)
    if not args.image_dir.is_dir():
        raise DatasetError(f"{args.image_dir} is not a folder")
    paths = image_paths(args.image_dir)
    if not paths:
        raise DatasetError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {args.image_dir}")
    stems = [path.stem for path in paths]
    if len(set(stems)) != len(stems):
        raise DatasetError(f"{args.image_dir} holds images that differ only in suffix; outputs are named by stem")

    engine, _ = load_engine(params.model)
    args.out.mkdir(parents=True, exist_ok=True)
    sheet_rows, unreadable, seconds = [], set(), 0.0
    windows = folder_windows(len(paths), params.window.size)
    with tqdm(total=len(paths), unit="img", desc="infer") as progress:
        for window_id, (indices, new) in enumerate(windows):
            # Images are decoded per window so a large folder never sits in memory.
            frames = []
            for i in indices:
                try:
                    image, why = read_rgb(paths[i], params.inputs.max_pixels), "not a decodable image"
                except ConversionError as err:
                    image, why = None, str(err)
                if image is None:
                    if i not in unreadable:
                        print(f"warning: skipping {paths[i]}: {why}", file=sys.stderr)
                    unreadable.add(i)
                else:
                    frames.append(Frame(stamp_ns=i, frame_id=paths[i].stem, image=image, source=FOLDER_SOURCE))
            fresh = set(indices[len(indices) - new:])
            publish = tuple(k for k, frame in enumerate(frames) if frame.stamp_ns in fresh)
            if publish:
                result = engine.run(Window(window_id=window_id, frames=tuple(frames), publish=publish))
                seconds += result.inference_seconds
                for frame, maps in result.published():
                    write_maps(args.out / frame.frame_id, maps)
                    sheet_rows.append(contact_sheet([(frame.frame_id, frame.image, maps)]))
            progress.update(new)
    engine.release()
    if not sheet_rows:
        raise DatasetError(f"none of the {len(paths)} images in {args.image_dir} could be decoded")
    sheet_path = args.out / "contact_sheet.png"
    cv2.imwrite(str(sheet_path), cv2.cvtColor(np.concatenate(sheet_rows, axis=0), cv2.COLOR_RGB2BGR))
    print(
        f"wrote maps of {len(sheet_rows)} images to {args.out} ({len(windows)} windows of {params.window.size}, "
        f"{seconds:.1f} s in the network"
        f"{f', {len(unreadable)} undecodable files skipped' if unreadable else ''}); overview: {sheet_path}",
        file=sys.stderr,
    )
    return 0
