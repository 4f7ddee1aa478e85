"""`mvinverse-ros relight`: insert lights and repaint regions of a recorded bag, view-consistently.

The bag goes through the same frame reader and perception pipeline as `bag process` (same
parameters); every published frame with depth, camera_info and pose is relit from its own maps
and the fused cloud is relit in the fixed frame and seen from every recorded camera. Writes
OUT_DIR/{relit,edited,cloud}/<stamp>_<camera>.png, OUT_DIR/preview.gif (input | relit | edited)
and OUT_DIR/sheet.png (input | relit | edited | cloud for a few frames).
"""
from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mvinverse_ros.cli.common import EXIT_CODES, MODEL_FLAGS, add_params_arguments, load_engine, params_from_args
from mvinverse_ros.params import ParameterError

LIGHT_SYNTAX = ("point:X,Y,Z:R,G,B:WATTS | spot:X,Y,Z:TX,TY,TZ:R,G,B:WATTS[:CONE_DEG] (aimed at TX,TY,TZ) | "
                "directional:DX,DY,DZ:R,G,B:W_PER_M2 (direction of travel)")
EDIT_SYNTAX = ("box:X0,Y0,Z0,X1,Y1,Z1:PAINT | sphere:X,Y,Z,RADIUS:PAINT | mask:STAMP_NS:MASK.png:PAINT, "
               "PAINT = R,G,B (linear albedo in [0, 1]) or an image file (texture, mapped planarly)")
PREVIEW_WIDTH = 320
PREVIEW_FRAMES = 48
SHEET_ROWS = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `relight`."""
    parser = subparsers.add_parser(
        "relight", help="relight and repaint a bag's frames and fused cloud (positions in tf.fixed_frame)",
        description="Runs the perception pipeline over IN_BAG (as `bag process` does) and writes relit and edited "
                    "frames, the relit cloud seen from each camera, preview.gif and sheet.png to OUT_DIR. "
                    f"Lights: {LIGHT_SYNTAX}. Edits: {EDIT_SYNTAX}. Colours are linear RGB.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("input", type=Path, help="input bag (with depth, camera_info and tf)")
    parser.add_argument("output", type=Path, help="output folder")
    add_params_arguments(parser, MODEL_FLAGS)
    parser.add_argument("--light", action="append", default=[], metavar="SPEC", help=f"insert a light: {LIGHT_SYNTAX}")
    parser.add_argument("--dim", default="1", metavar="F", help="factor on the recorded light, >= 0 (default 1)")
    parser.add_argument("--edit", action="append", default=[], metavar="SPEC", help=f"new albedo: {EDIT_SYNTAX}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_relight)


def _numbers(text: str, count: int, what: str, spec: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        values = np.array([])
    if values.shape != (count,) or not np.all(np.isfinite(values)):
        raise ParameterError(f"{spec!r}: {what} needs {count} comma-separated numbers, got {text!r}")
    return values


def _positive(text: str, what: str, spec: str) -> float:
    value = _numbers(text, 1, what, spec)[0]
    if value < 0:
        raise ParameterError(f"{spec!r}: {what} must be >= 0, got {text!r}")
    return float(value)


def parse_light(spec: str):
    """A light from its command-line form (see LIGHT_SYNTAX).

    Raises:
        ParameterError: anything malformed, named with the offending field.
    """
    from mvinverse_ros.rendering.lights import DirectionalLight, PointLight, SpotLight

    kind, *fields = spec.split(":")
    shapes = {"point": (3,), "spot": (4, 5), "directional": (3,)}
    if kind not in shapes:
        raise ParameterError(f"--light {spec!r}: kind must be point, spot or directional; syntax: {LIGHT_SYNTAX}")
    if len(fields) not in shapes[kind]:
        raise ParameterError(f"--light {spec!r}: wrong number of ':' fields; syntax: {LIGHT_SYNTAX}")
    where = _numbers(fields[0], 3, "position" if kind != "directional" else "direction", spec)
    colour = _numbers(fields[-2 if kind != "spot" or len(fields) == 4 else -3], 3, "colour", spec)
    try:
        if kind == "point":
            return PointLight(where, colour, _positive(fields[2], "watts", spec))
        if kind == "directional":
            return DirectionalLight(where, colour, _positive(fields[2], "irradiance", spec))
        target = _numbers(fields[1], 3, "target", spec)
        cone = _positive(fields[4], "cone angle", spec) if len(fields) == 5 else 30.0
        return SpotLight(where, target - where, colour, _positive(fields[3], "watts", spec), cone, min(5.0, cone))
    except ValueError as err:
        raise ParameterError(f"--light {spec!r}: {err}") from err


def _paint(text: str, spec: str) -> dict:
    if "," in text and not Path(text).is_file():
        colour = _numbers(text, 3, "colour", spec)
        if np.any(colour < 0) or np.any(colour > 1):
            raise ParameterError(f"--edit {spec!r}: colour must lie in [0, 1], got {text!r}")
        return {"colour": colour}
    from mvinverse_ros.visualize import srgb_to_linear

    image = cv2.imread(text, cv2.IMREAD_COLOR)
    if image is None:
        raise ParameterError(f"--edit {spec!r}: {text!r} is neither R,G,B nor a readable image")
    return {"texture": srgb_to_linear(cv2.cvtColor(image, cv2.COLOR_BGR2RGB) / 255.0).astype(np.float32)}


@dataclass(frozen=True)
class EditSpec:
    """A parsed --edit: the region (or, for a mask, the frame stamp and mask image) and its paint."""

    text: str
    paint: dict
    region: object = None
    mask_stamp_ns: int = 0
    mask: np.ndarray | None = None


def parse_edit(spec: str) -> EditSpec:
    """An edit from its command-line form (see EDIT_SYNTAX); a mask is resolved once its frame is read.

    Raises:
        ParameterError: anything malformed, named with the offending field.
    """
    from mvinverse_ros.rendering.edit import Box, Sphere

    kind, *fields = spec.split(":")
    if kind not in ("box", "sphere", "mask") or len(fields) != (3 if kind == "mask" else 2):
        raise ParameterError(f"--edit {spec!r}: syntax: {EDIT_SYNTAX}")
    paint = _paint(fields[-1], spec)
    if kind == "box":
        corners = _numbers(fields[0], 6, "box corners", spec)
        return EditSpec(spec, paint, Box(corners[:3], corners[3:]))
    if kind == "sphere":
        ball = _numbers(fields[0], 4, "centre and radius", spec)
        if ball[3] <= 0:
            raise ParameterError(f"--edit {spec!r}: radius must be > 0")
        return EditSpec(spec, paint, Sphere(ball[:3], float(ball[3])))
    if not fields[0].isdigit():
        raise ParameterError(f"--edit {spec!r}: STAMP_NS must be an integer stamp in nanoseconds, got {fields[0]!r}")
    mask = cv2.imread(fields[1], cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ParameterError(f"--edit {spec!r}: cannot read mask image {fields[1]!r}")
    return EditSpec(spec, paint, mask_stamp_ns=int(fields[0]), mask=mask > 127)


def resolve_edits(specs: list[EditSpec], bag: Path, params) -> list:
    """AlbedoEdits, lifting each mask with the depth and pose of its frame (one read of the bag, no network).

    Raises:
        ParameterError: a mask's stamp matches no frame, or its frame cannot place the mask in 3-D.
    """
    from mvinverse_ros.bag.frames import iter_frames
    from mvinverse_ros.rendering.edit import AlbedoEdit, region_from_mask

    wanted = {spec.mask_stamp_ns for spec in specs if spec.mask is not None}
    frames = {frame.stamp_ns: frame for frame in iter_frames(bag, params) if frame.stamp_ns in wanted} if wanted else {}
    edits = []
    for spec in specs:
        region = spec.region
        if spec.mask is not None:
            frame = frames.get(spec.mask_stamp_ns)
            if frame is None:
                raise ParameterError(f"--edit {spec.text!r}: no frame of the bag has stamp {spec.mask_stamp_ns}")
            try:
                region = region_from_mask(frame, spec.mask)
            except ValueError as err:
                raise ParameterError(f"--edit {spec.text!r}: {err}") from err
        edits.append(AlbedoEdit(region, **spec.paint))
    return edits


def to_rgb8(linear: np.ndarray) -> np.ndarray:
    """Linear radiance to displayable sRGB uint8 (clipped at 1)."""
    from mvinverse_ros.visualize import linear_to_srgb

    return np.rint(linear_to_srgb(linear) * 255.0).astype(np.uint8)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def _panel(images: list[np.ndarray], labels: list[str], width: int) -> np.ndarray:
    tiles = []
    for image, label in zip(images, labels):
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        tile = np.ascontiguousarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
        cv2.putText(tile, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


@dataclass
class View:
    """What the cloud pass needs of one relit frame (its images are already on disk)."""

    name: str
    camera: object
    camera_to_fixed: np.ndarray
    size: tuple[int, int]
    panel: np.ndarray


def run_relight(args: argparse.Namespace) -> int:
    """Run `relight`; see the module docstring for what is written."""
    from tqdm import tqdm

    params = params_from_args(args)
    lights = [parse_light(spec) for spec in args.light]
    dim = _positive(args.dim, "--dim", args.dim)
    specs = [parse_edit(spec) for spec in args.edit]
    if not (lights or specs or dim != 1.0):
        raise ParameterError("nothing to do: give --light, --edit or --dim")
    edits = resolve_edits(specs, args.input, params)

    from mvinverse_ros.bag.errors import BagError
    from mvinverse_ros.bag.frames import iter_frames
    from mvinverse_ros.pipeline import PerceptionPipeline
    from mvinverse_ros.geometry.camera import camera_for_image
    from mvinverse_ros.rendering.edit import edit_albedo, edit_frame
    from mvinverse_ros.rendering.relight import relight_frame, render_cloud

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    engine, _ = load_engine(params.model)
    pipeline = PerceptionPipeline(params, engine)
    folders = {name: args.output / name for name in ("relit", "edited", "cloud")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    skips: Counter = Counter()
    views: list[View] = []
    render_seconds = 0.0
    with tqdm(desc="relight", unit="frame", disable=args.no_progress) as bar:
        for frame in iter_frames(args.input, params, skips):
            window = pipeline.submit(frame)
            if window is None:
                continue
            for published, maps in pipeline.process(window).result.published():
                started = time.perf_counter()
                try:
                    relit = relight_frame(published, maps, lights, dim)
                    edited = relight_frame(published, maps, lights, dim, edit_frame(published, maps, edits))
                except ValueError:
                    skips["not_relit_no_depth_camera_or_pose"] += 1
                    continue
                render_seconds += time.perf_counter() - started
                name = f"{published.stamp_ns}_{published.source}.png"
                images = [published.image, to_rgb8(relit), to_rgb8(edited)]
                if published.image.shape[:2] != relit.shape[:2]:
                    images[0] = cv2.resize(published.image, relit.shape[1::-1], interpolation=cv2.INTER_AREA)
                _write_png(folders["relit"] / name, images[1])
                _write_png(folders["edited"] / name, images[2])
                panel = _panel(images, ["input", "relit", "edited"], PREVIEW_WIDTH)
                views.append(View(name, published.camera, published.camera_to_fixed, relit.shape[:2], panel))
                bar.update(1)
    cloud = pipeline.cloud()
    if not views:
        raise BagError("no published frame had depth, camera_info and a pose in tf.fixed_frame "
                       f"({params.tf.fixed_frame}); check inputs.* and tf.fixed_frame")
    cloud_albedo = edit_albedo(cloud.points, cloud.albedo, edits) if cloud is not None else None
    cloud_images = {}
    for view in tqdm(views if cloud is not None else [], desc="cloud views", unit="view", disable=args.no_progress):
        camera = camera_for_image(view.camera, *view.size)
        image, _ = render_cloud(cloud, camera, view.camera_to_fixed, params.fusion.voxel_size, lights, dim,
                                cloud_albedo)
        cloud_images[view.name] = to_rgb8(image)
        _write_png(folders["cloud"] / view.name, cloud_images[view.name])
    picks = np.linspace(0, len(views) - 1, min(SHEET_ROWS, len(views))).round().astype(int)
    sheet = [np.concatenate([views[i].panel, _panel([cloud_images[views[i].name]], ["cloud"], PREVIEW_WIDTH)], axis=1)
             if cloud_images else views[i].panel for i in picks]
    _write_png(args.output / "sheet.png", np.concatenate(sheet, axis=0))
    shown = np.unique(np.linspace(0, len(views) - 1, PREVIEW_FRAMES).round().astype(int))
    write_gif(args.output / "preview.gif", [views[i].panel for i in shown])
    print(f"{len(views)} frames relit and edited -> {args.output} ({render_seconds / len(views):.3f} s per frame "
          f"for relight + edit); cloud points {len(cloud) if cloud is not None else 0}; "
          f"skips: {', '.join(f'{k} {v}' for k, v in sorted(skips.items())) or 'none'}")
    return 0


def write_gif(path: Path, panels: list[np.ndarray], seconds_per_frame: float = 0.25) -> None:
    """An animated GIF (Pillow; opencv cannot write GIF) looping over `panels`."""
    from PIL import Image

    frames = [Image.fromarray(panel) for panel in panels]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(seconds_per_frame * 1000), loop=0)
