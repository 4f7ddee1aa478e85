"""Relighting and editing on real 7-Scenes frames: view consistency of an edit, and the `relight` command."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mvinverse_ros.bag.importer import import_rgbd
from mvinverse_ros.cli import main
from mvinverse_ros.datasets.rgbd import SEVEN_SCENES_START_NS, load_rgbd_frames
from mvinverse_ros.geometry.camera import unproject_depth
from mvinverse_ros.geometry.correspondence import reprojection
from mvinverse_ros.geometry.transforms import transform_points
from mvinverse_ros.inference import predict
from mvinverse_ros.params import load_params
from mvinverse_ros.pipeline import engine_from_params
from mvinverse_ros.rendering.edit import AlbedoEdit, Sphere, edit_frame
from mvinverse_ros.types import Frame
from test_import_rgbd import few_frames

VIEWS = (0, 8, 16)  # frame indices of the shared sequence: ~0.5 m and ~20 degrees apart
CENTRE = np.array([-0.535, 0.145, 1.495])  # a point on the kitchen table in the fixed frame (seen by all views)
FAST = ["--set", "model.preset=tiny", "--set", "model.long_side=112", "--set", "model.device=cpu",
        "--set", "window.size=2", "--set", "window.stride=2", "--set", "window.publish=all",
        "--set", "window.min_translation=0", "--set", "window.min_rotation_deg=0", "--set", "fusion.pixel_stride=4"]


@pytest.fixture(scope="module")
def views(sevenscenes_dir: Path):
    images, depths, cameras, poses = load_rgbd_frames(sevenscenes_dir, (640, 480), limit=max(VIEWS) + 1)
    _, loaded = engine_from_params(load_params().model)
    maps = predict([images[i] for i in VIEWS], loaded)
    frames = [Frame(i, "camera", images[i], cameras[i], depths[i], poses[i]) for i in VIEWS]
    return frames, maps


def _inside(frame: Frame, region: Sphere) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    lifted = unproject_depth(frame.depth, frame.camera)
    return region.contains(transform_points(frame.camera_to_fixed, lifted.points)), (lifted.rows, lifted.cols)


def test_a_fixed_frame_edit_paints_the_same_surface_in_every_view(views):
    frames, maps = views
    colour = np.array([0.1, 0.3, 0.9], np.float32)
    edit = AlbedoEdit(Sphere(CENTRE, 0.15), colour=colour)
    edited = [edit_frame(f, m, [edit]) for f, m in zip(frames, maps)]
    for frame, frame_maps, albedo in zip(frames, maps, edited):
        inside, (rows, cols) = _inside(frame, edit.region)
        assert inside.sum() > 2000
        changed = np.any(albedo != frame_maps.albedo, axis=2)
        outside = np.ones(changed.shape, bool)
        outside[rows[inside], cols[inside]] = False
        assert not changed[outside].any()  # outside the region (or without depth): untouched, bit for bit
        np.testing.assert_array_equal(albedo[rows[inside], cols[inside]], np.broadcast_to(colour, (inside.sum(), 3)))
    for target in (1, 2):
        match = reprojection(frames[0].depth, frames[0].camera, frames[0].camera_to_fixed, frames[target].depth,
                             frames[target].camera, frames[target].camera_to_fixed)
        rows, cols = match.nearest()
        painted_source = np.all(edited[0][match.rows, match.cols] == colour, axis=1)
        painted_target = np.all(edited[target][rows, cols] == colour, axis=1)
        # Measured 98.9 % (view 8) and 98.8 % (view 16); misses are sensor-depth noise at the sphere's rim.
        assert painted_source.sum() > 2000
        assert np.mean(painted_target[painted_source]) > 0.97


def test_a_planar_texture_lands_on_the_same_surface_points_in_two_views(views):
    frames, maps = views
    texture = np.zeros((8, 8, 3), np.float32)
    texture[::2, ::2] = texture[1::2, 1::2] = 1.0  # checker, 3.75 cm squares across the 30 cm region
    edit = AlbedoEdit(Sphere(CENTRE, 0.15), texture=texture)
    edited = [edit_frame(f, m, [edit]) for f, m in zip(frames[:2], maps[:2])]
    inside, _ = _inside(frames[0], edit.region)
    match = reprojection(frames[0].depth, frames[0].camera, frames[0].camera_to_fixed, frames[1].depth,
                         frames[1].camera, frames[1].camera_to_fixed)
    rows, cols = match.nearest()
    lifted = unproject_depth(frames[0].depth, frames[0].camera)
    source_inside = np.zeros(frames[0].depth.shape, bool)
    source_inside[lifted.rows[inside], lifted.cols[inside]] = True
    keep = source_inside[match.rows, match.cols]
    agree = np.all(edited[0][match.rows[keep], match.cols[keep]] == edited[1][rows[keep], cols[keep]], axis=1)
    assert keep.sum() > 2000 and agree.mean() > 0.9  # misses: pixel rounding and depth noise at checker edges


@pytest.fixture(scope="module")
def bag(sevenscenes_dir: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("relight")
    import_rgbd(few_frames(sevenscenes_dir, root / "seq", 6), root / "bag", fps=10.0)
    return root / "bag"


def test_relight_command_writes_frames_cloud_views_preview_and_sheet(bag: Path, tmp_path: Path, capsys):
    mask = np.zeros((480, 640), np.uint8)
    mask[300:360, 380:460] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    cv2.imwrite(str(tmp_path / "texture.png"), np.tile(np.array([[0, 255]], np.uint8), (4, 2))[..., None].repeat(3, 2))
    out = tmp_path / "out"
    code = main(["relight", str(bag), str(out), *FAST, "--no-progress", "--dim", "0.6",
                 "--light", "point:-0.44,0.08,0.90:1,0.9,0.8:2",
                 "--light", "spot:-0.3,0.5,1.0:-0.5,0.1,1.5:1,1,1:3:25",
                 "--light", "directional:0,1,0:1,1,1:0.5",
                 "--edit", "box:-0.7,0.0,1.3,-0.4,0.3,1.7:0.9,0.1,0.1",
                 "--edit", f"mask:{SEVEN_SCENES_START_NS}:{tmp_path / 'mask.png'}:{tmp_path / 'texture.png'}"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "6 frames relit and edited" in printed.out
    for folder in ("relit", "edited", "cloud"):
        names = sorted(p.name for p in (out / folder).glob("*.png"))
        assert names == [f"{SEVEN_SCENES_START_NS + i * 100_000_000}_camera.png" for i in range(6)]
        assert cv2.imread(str(out / folder / names[0])).shape == (480, 640, 3)
    relit, edited = (cv2.imread(str(out / f / names[0])) for f in ("relit", "edited"))
    assert np.any(relit != edited)
    with Image.open(out / "preview.gif") as gif:
        assert gif.n_frames == 6 and gif.size == (3 * 320, 240)
    assert cv2.imread(str(out / "sheet.png")).shape == (4 * 240, 4 * 320, 3)


@pytest.mark.parametrize("arguments, message", [
    (["--light", "lamp:0,0,0:1,1,1:5"], "kind must be point, spot or directional"),
    (["--light", "point:0,0:1,1,1:5"], "position needs 3"),
    (["--light", "point:0,0,0:1,1,1:-5"], "watts must be >= 0"),
    (["--light", "spot:0,0,0:0,0,0:1,1,1:5"], "non-zero vector"),
    (["--edit", "box:0,0,0,1,1:1,0,0"], "box corners needs 6"),
    (["--edit", "sphere:0,0,0,1:2,0,0"], "colour must lie in [0, 1]"),
    (["--edit", "sphere:0,0,0,1:nowhere.png"], "neither R,G,B nor a readable image"),
    (["--dim", "-1"], "--dim must be >= 0"),
    ([], "nothing to do"),
    (["--set", "window.size=99", "--dim", "0.5"], "window.size"),
])
def test_each_bad_argument_is_one_error_line_and_exit_2(bag: Path, tmp_path: Path, capsys, arguments, message):
    assert main(["relight", str(bag), str(tmp_path / "out"), "--no-progress", *arguments]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_a_mask_on_a_stamp_the_bag_lacks_is_refused(bag: Path, tmp_path: Path, capsys):
    cv2.imwrite(str(tmp_path / "mask.png"), np.full((480, 640), 255, np.uint8))
    code = main(["relight", str(bag), str(tmp_path / "out"), "--no-progress", "--edit",
                 f"mask:123:{tmp_path / 'mask.png'}:0.5,0.5,0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no frame of the bag has stamp 123" in err[0], err
