"""`mvinverse-ros infer`: material maps for a folder of images, window by window.

The folder is cut into consecutive windows of `--window` images (the last window is filled up
with earlier images, which are served from the engine's cache and not written twice), so any
number of images runs in bounded memory with multi-view context. Undecodable files are
reported, counted and skipped; the other images are still processed.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mvinverse_ros.datasets.images import IMAGE_SUFFIXES, image_paths, read_rgb
from mvinverse_ros.pipeline import engine_from_params
from mvinverse_ros.params import load_params
from mvinverse_ros.types import Frame, Window
from mvinverse_ros.visualize import MAP_NAMES, contact_sheet, map_to_rgb8

FOLDER_SOURCE = "folder"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `infer` sub-command (defaults from config/perception.yaml)."""
    params = load_params()
    model, window = params.model, params.window
    parser = subparsers.add_parser(
        "infer",
        help="predict material maps for a folder of images",
        description="Writes <out>/<image>/<map>.png and .npy for every image, and <out>/contact_sheet.png.",
    )
    parser.add_argument("image_dir", type=Path, help="folder of RGB images (sorted by name = window order)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--preset", default=model.preset,
                         help=f"architecture when no checkpoint (default {model.preset})")
    weights.add_argument("--checkpoint", default=model.checkpoint,
                         help="local .pt/.pth/.safetensors or Hugging Face repo id")
    parser.add_argument("--window", type=int, default=window.size, help=f"images per window (default {window.size})")
    parser.add_argument("--long-side", type=int, default=model.long_side,
                        help=f"network long side in pixels; 0 = the size the weights were trained at "
                             f"(default {model.long_side})")
    parser.add_argument("--device", default=model.device, help=f"auto | cpu | cuda | cuda:N (default {model.device})")
    parser.add_argument("--dtype", default=model.dtype, choices=("fp32", "bf16", "fp16"),
                        help=f"autocast precision (default {model.dtype})")
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
    """Run the sub-command; returns the process exit code."""
    if not args.image_dir.is_dir():
        print(f"error: {args.image_dir} is not a folder", file=sys.stderr)
        return 2
    paths = image_paths(args.image_dir)
    if not paths:
        print(f"error: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {args.image_dir}", file=sys.stderr)
        return 2
    stems = [path.stem for path in paths]
    if len(set(stems)) != len(stems):
        print(f"error: {args.image_dir} holds images that differ only in suffix; outputs are named by stem",
              file=sys.stderr)
        return 2

    model_params = dataclasses.replace(
        load_params().model, checkpoint=args.checkpoint or "", preset=args.preset, long_side=args.long_side,
        device=args.device, dtype=args.dtype,
    )
    engine, loaded = engine_from_params(model_params)
    if not loaded.trained:
        print(
            f"warning: the '{loaded.preset}' model has UNTRAINED (random) weights; the maps are meaningless. "
            "Pass --checkpoint with trained weights.",
            file=sys.stderr,
        )
    if loaded.preset != args.preset and not args.checkpoint:
        print(f"warning: --preset {args.preset} not used: the weights at {loaded.source} are a '{loaded.preset}' model",
              file=sys.stderr)
    print(f"model: {loaded.preset} from {loaded.source}; device {engine.device}, dtype {args.dtype}", file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    sheet_rows, unreadable, seconds = [], set(), 0.0
    with tqdm(total=len(paths), unit="img", desc="infer") as progress:
        for window_id, (indices, new) in enumerate(folder_windows(len(paths), args.window)):
            # Images are decoded per window so a large folder never sits in memory.
            frames = []
            for i in indices:
                image = read_rgb(paths[i])
                if image is None:
                    if i not in unreadable:
                        print(f"warning: skipping {paths[i]}: not a decodable image", file=sys.stderr)
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
        print(f"error: none of the {len(paths)} images in {args.image_dir} could be decoded", file=sys.stderr)
        return 2
    sheet_path = args.out / "contact_sheet.png"
    cv2.imwrite(str(sheet_path), cv2.cvtColor(np.concatenate(sheet_rows, axis=0), cv2.COLOR_RGB2BGR))
    print(
        f"wrote maps of {len(sheet_rows)} images to {args.out} ({seconds:.1f} s in the network"
        f"{f', {len(unreadable)} undecodable files skipped' if unreadable else ''}); overview: {sheet_path}",
        file=sys.stderr,
    )
    return 0
