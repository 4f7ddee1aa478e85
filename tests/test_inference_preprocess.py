"""Network sizing, image conversion, map resizing, devices/dtypes and visualisations (no model needed)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mvinverse_ros.engine.preprocess import (
    InferenceError,
    as_float_rgb,
    autocast,
    images_to_tensor,
    network_size,
    outputs_to_maps,
    resolve_device,
)
from mvinverse_ros.types import MAP_NAMES, MaterialMaps
from mvinverse_ros.visualize import contact_sheet, map_to_rgb8, normal_to_rgb8


@pytest.mark.parametrize(
    "height, width, long_side, expected",
    [
        (480, 640, 518, (378, 518)),  # 7-Scenes: 388.5 -> 378 (27 patches), 518 = 37 patches
        (519, 779, 518, (336, 518)),  # Mip-NeRF 360 room: 345 -> 336
        (640, 480, 518, (518, 378)),  # portrait keeps its orientation
        (1000, 1000, 2000, (1022, 1022)),  # long side capped at 1024, floored to 73 patches
        (20, 2000, 518, (14, 518)),  # at least one patch
        (480, 640, 14, (14, 14)),
    ],
)
def test_network_size(height, width, long_side, expected):
    size = network_size(height, width, long_side)
    assert size == expected
    assert all(side % 14 == 0 for side in size)


def test_network_size_rejects_tiny_long_side():
    with pytest.raises(InferenceError, match="long_side"):
        network_size(480, 640, 13)


def test_as_float_rgb_accepts_uint8_and_float_and_rejects_grey():
    rgb = np.array([[[0, 128, 255]]], np.uint8)
    assert as_float_rgb(rgb) == pytest.approx(np.array([[[0.0, 128 / 255, 1.0]]]))
    assert as_float_rgb(np.full((1, 1, 3), 1.5)).max() == 1.0
    with pytest.raises(InferenceError, match="HxWx3"):
        as_float_rgb(np.zeros((4, 4), np.uint8))
    with pytest.raises(InferenceError, match="dtype"):
        as_float_rgb(np.zeros((4, 4, 3), np.int32))


def test_images_to_tensor_resizes_real_frames(sevenscenes_dir):
    image = cv2.cvtColor(cv2.imread(str(sevenscenes_dir / "frame-000000.color.jpg")), cv2.COLOR_BGR2RGB)
    batch = images_to_tensor([image, image], network_size(*image.shape[:2], 518), torch.device("cpu"))
    assert batch.shape == (2, 3, 378, 518) and batch.dtype == torch.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    # area-filtered downscale keeps the mean colour of the real frame
    assert batch[0].mean(dim=(1, 2)).numpy() == pytest.approx(image.reshape(-1, 3).mean(0) / 255.0, abs=2e-3)


def test_outputs_to_maps_resizes_back_and_renormalises_normals():
    rng = np.random.default_rng(0)
    normal = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(1, 28, 42, 3)).astype(np.float32)), dim=-1)
    outputs = {
        "albedo": torch.rand(1, 28, 42, 3),
        "roughness": torch.rand(1, 28, 42, 1),
        "metallic": torch.rand(1, 28, 42, 1),
        "normal": normal,
        "shading": torch.rand(1, 28, 42, 3),
    }
    (maps,) = outputs_to_maps(outputs, [(48, 64)], "opencv")
    assert maps.albedo.shape == (48, 64, 3) and maps.shading.shape == (48, 64, 3)
    assert maps.roughness.shape == (48, 64) and maps.metallic.shape == (48, 64)
    assert np.linalg.norm(maps.normal, axis=-1) == pytest.approx(np.ones((48, 64)), abs=1e-5)
    assert all(getattr(maps, name).dtype == np.float32 for name in MAP_NAMES)
    # same size: values pass through untouched
    (same,) = outputs_to_maps(outputs, [(28, 42)], "opencv")
    assert np.array_equal(same.roughness, outputs["roughness"][0, ..., 0].numpy())
    np.testing.assert_allclose(same.normal, normal[0].numpy(), atol=1e-6)
    # OpenGL-convention weights (x right, y up, z backward) leave in the optical frame: (x, -y, -z)
    (optical,) = outputs_to_maps(outputs, [(28, 42)], "opengl")
    np.testing.assert_allclose(optical.normal, normal[0].numpy() * np.array([1, -1, -1]), atol=1e-6)
    with pytest.raises(ValueError, match="unknown normal convention"):
        outputs_to_maps(outputs, [(28, 42)], "directx")


def test_resolve_device_and_autocast():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InferenceError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InferenceError, match="CUDA"):
            resolve_device("cuda")
    with pytest.raises(InferenceError, match="dtype"):
        autocast(torch.device("cpu"), "fp8")
    with autocast(torch.device("cpu"), "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def _maps(height: int = 6, width: int = 8) -> MaterialMaps:
    return MaterialMaps(
        albedo=np.full((height, width, 3), 0.5, np.float32),
        roughness=np.linspace(0, 1, height * width, dtype=np.float32).reshape(height, width),
        metallic=np.zeros((height, width), np.float32),
        normal=np.tile(np.array([0.0, 0.0, -1.0], np.float32), (height, width, 1)),
        shading=np.ones((height, width, 3), np.float32),
    )


def test_map_pictures():
    maps = _maps()
    assert map_to_rgb8("albedo", maps)[0, 0].tolist() == [128, 128, 128]
    roughness = map_to_rgb8("roughness", maps)
    assert roughness.shape == (6, 8, 3)
    assert roughness[0, 0].tolist() == [0, 0, 0] and roughness[-1, -1].tolist() == [255] * 3
    assert map_to_rgb8("normal", maps)[0, 0].tolist() == [128, 128, 0]  # camera-facing normal (0,0,-1)
    assert normal_to_rgb8(np.array([[[1.0, -1.0, 0.0]]]))[0, 0].tolist() == [255, 0, 128]
    with pytest.raises(KeyError, match="unknown map"):
        map_to_rgb8("depth", maps)


def test_contact_sheet_grid_and_labels():
    image = np.full((60, 80, 3), 200, np.uint8)
    sheet = contact_sheet([("a", image, _maps(60, 80)), ("b", image, _maps(60, 80))], tile_width=100)
    assert sheet.shape == (2 * 75, 6 * 100, 3) and sheet.dtype == np.uint8
    # label band (black with white text) at each tile's top-left; rest of the input tile untouched
    assert (sheet[:12, :20] == 0).any() and (sheet[:12, :20] > 200).any()
    assert (sheet[40:75, 50:100] == 200).all()
    assert (sheet[40:75, 550:600] == 255).all()  # shading column = ones
    with pytest.raises(ValueError):
        contact_sheet([])
