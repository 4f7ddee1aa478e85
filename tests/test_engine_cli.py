"""`mvinverse-ros infer` on the real Mip-NeRF 360 room photos: every file it promises, at the right sizes."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from mvinverse_ros.cli import main
from mvinverse_ros.cli.infer import folder_windows
from mvinverse_ros.types import MAP_NAMES


def test_folder_windows_tile_and_fill_the_last_window():
    assert folder_windows(10, 4) == [(range(0, 4), 4), (range(4, 8), 4), (range(6, 10), 2)]
    assert folder_windows(3, 4) == [(range(0, 3), 3)]
    assert folder_windows(8, 4) == [(range(0, 4), 4), (range(4, 8), 4)]
    published = [i for indices, new in folder_windows(23, 5) for i in list(indices)[-new:]]
    assert published == list(range(23))


def test_infer_writes_maps_npy_and_contact_sheet(room_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["infer", str(room_dir), "--out", str(out), "--preset", "small", "--long-side", "70", "--window", "4",
                 "--device", "cpu"])
    assert code == 0
    stderr = capsys.readouterr().err
    assert "model: " in stderr and "wrote maps of 10 images" in stderr
    images = sorted(p for p in room_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert len(images) == 10
    for path in images:
        height, width = cv2.imread(str(path)).shape[:2]
        folder = out / path.stem
        for name in MAP_NAMES:
            values = np.load(folder / f"{name}.npy")
            assert values.dtype == np.float32
            assert values.shape == ((height, width) if name in ("roughness", "metallic") else (height, width, 3))
            picture = cv2.imread(str(folder / f"{name}.png"), cv2.IMREAD_UNCHANGED)
            assert picture.shape[:2] == (height, width)
        normal = np.load(folder / "normal.npy")
        assert np.linalg.norm(normal, axis=-1) == pytest.approx(1.0, abs=1e-4)
        # the PNG is the n * 0.5 + 0.5 picture of the saved normals (BGR on disk)
        png = cv2.cvtColor(cv2.imread(str(folder / "normal.png")), cv2.COLOR_BGR2RGB).astype(float)
        assert np.abs(png - (normal * 0.5 + 0.5) * 255).max() <= 0.51
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet.shape[1] == 6 * 192 and sheet.shape[0] == 10 * round(519 * 192 / 779)


def test_infer_skips_undecodable_files_and_says_when_weights_are_untrained(room_dir, tmp_path, capsys):
    from mvinverse_ros.model import load_model

    folder = tmp_path / "images"
    folder.mkdir()
    real = sorted(p for p in room_dir.iterdir() if p.suffix.lower() == ".jpg")[:3]
    for path in real:
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(real[0].read_bytes()[:200])  # truncated JPEG
    out = tmp_path / "out"
    assert main(["infer", str(folder), "--out", str(out), "--preset", "tiny", "--long-side", "28", "--window", "2",
                 "--device", "cpu"]) == 0
    stderr = capsys.readouterr().err
    assert "skipping" in stderr and "broken.jpg" in stderr and "1 undecodable files skipped" in stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(p.stem for p in real)
    assert ("UNTRAINED" in stderr) == (not load_model(preset="tiny").trained)


def test_infer_rejects_a_folder_without_images_as_unusable_input(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no pictures here")
    assert main(["infer", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.startswith("error: no images")
    assert main(["infer", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'notes.txt'} is not a folder\n"
    assert not (tmp_path / "out").exists()


def test_infer_reads_model_and_window_from_a_params_file(room_dir, tmp_path, capsys):
    """The file's model.* and window.size are what runs; a flag still overrides the file."""
    from mvinverse_ros.model import load_model

    params_file = tmp_path / "params.yaml"
    params_file.write_text("/**:\n  ros__parameters:\n"
                           "    model: {preset: tiny, long_side: 28, device: cpu, dtype: fp16}\n"
                           "    window: {size: 3}\n")
    folder = tmp_path / "images"
    folder.mkdir()
    for path in sorted(room_dir.iterdir())[:4]:
        shutil.copy(path, folder / path.name)
    assert main(["infer", str(folder), "--out", str(tmp_path / "out"), "--params-file", str(params_file),
                 "--dtype", "bf16"]) == 0
    stderr = capsys.readouterr().err
    assert "device cpu, dtype bf16" in stderr
    assert "(2 windows of 3," in stderr  # images 0-2, then 1-3 publishing image 3
    bundled = load_model("", preset="tiny")
    assert ("model.preset=tiny not used" in stderr) == (bundled.preset != "tiny")
