"""Images to network tensors and network outputs back to MaterialMaps.

The one code path shared by `predict`, the streaming engine, the node and the bag pipeline.
The network needs sides that are multiples of its 14-pixel patch and was trained around a 518
long side; robots send any size. So frames are resized to a common network size and every map
is resized back to its frame's own size, normals re-normalised after interpolation.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from mvinverse_ros.geometry.normals import to_optical
from mvinverse_ros.types import MAP_NAMES, MaterialMaps

PATCH = 14
MAX_LONG_SIDE = 1024  # the official script's cap; attention cost grows with the square of the tokens
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class InferenceError(ValueError):
    """Input the engine cannot run on (bad image, size, device or dtype); the message says which."""


def network_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(H, W) the network sees for an image of `height` x `width`.

    The long side is scaled to `long_side` (capped at 1024), the aspect kept, and each side
    floored to a multiple of 14 (at least one patch).

    Raises:
        InferenceError: for a long side below one patch or an empty image.
    """
    if long_side < PATCH:
        raise InferenceError(f"long_side must be at least {PATCH} pixels, got {long_side}")
    if height <= 0 or width <= 0:
        raise InferenceError(f"image has no pixels ({height}x{width})")
    target = min(long_side, MAX_LONG_SIDE)
    scale = target / max(height, width)
    new_height, new_width = (max(PATCH, int(round(side * scale)) // PATCH * PATCH) for side in (height, width))
    return new_height, new_width


def as_float_rgb(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 (0..255) or float (0..1) RGB -> float32 in [0, 1].

    Raises:
        InferenceError: when the array is not an HxWx3 image.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InferenceError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise InferenceError(f"expected uint8 or float RGB, got dtype {image.dtype}")
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def images_to_tensor(images: Sequence[np.ndarray], size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """Frames -> [F, 3, H, W] float32 in [0, 1] at the network size (area filter when shrinking)."""
    height, width = size
    batch = np.empty((len(images), 3, height, width), np.float32)
    for i, image in enumerate(images):
        rgb = as_float_rgb(image)
        shrinking = rgb.shape[0] * rgb.shape[1] > height * width
        resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        batch[i] = np.clip(resized, 0.0, 1.0).transpose(2, 0, 1)
    return torch.from_numpy(batch).to(device)


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    if array.shape[:2] == (height, width):
        return array
    out = cv2.resize(array, (width, height), interpolation=cv2.INTER_LINEAR)
    return out.reshape(height, width, *array.shape[2:])


def outputs_to_maps(
    outputs: dict[str, torch.Tensor], sizes: Sequence[tuple[int, int]], normal_convention: str
) -> list[MaterialMaps]:
    """Head outputs ([F, h, w, C] each) -> one MaterialMaps per frame at that frame's (H, W).

    Normals leave here in the REP 103 optical frame, converted from the weights'
    `normal_convention`, so nothing downstream needs to know which model made them.
    """
    host = {key: outputs[key].float().cpu().numpy() for key in MAP_NAMES}
    maps = []
    for i, (height, width) in enumerate(sizes):
        normal = to_optical(_resize(host["normal"][i], height, width), normal_convention)
        normal = normal / np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-8)
        maps.append(
            MaterialMaps(
                albedo=np.clip(_resize(host["albedo"][i], height, width), 0.0, 1.0),
                roughness=np.clip(_resize(host["roughness"][i], height, width)[..., 0], 0.0, 1.0),
                metallic=np.clip(_resize(host["metallic"][i], height, width)[..., 0], 0.0, 1.0),
                normal=normal.astype(np.float32),
                shading=np.clip(_resize(host["shading"][i], height, width), 0.0, 1.0),
            )
        )
    return maps


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cpu', 'cuda', 'cuda:N' as given.

    Raises:
        InferenceError: for an unknown name or CUDA asked for where there is none.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise InferenceError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N): {err}") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InferenceError(
            f"device {device!r} asked for, but this torch build sees no CUDA device; use 'cpu' or 'auto'"
        )
    if resolved.type not in ("cpu", "cuda"):
        raise InferenceError(f"unsupported device {device!r} (use auto, cpu, cuda or cuda:N)")
    return resolved


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """Mixed precision for 'bf16'/'fp16', nothing for 'fp32'.

    Raises:
        InferenceError: for an unknown dtype name.
    """
    if dtype not in DTYPES:
        raise InferenceError(f"unknown dtype {dtype!r} (use {', '.join(DTYPES)})")
    if DTYPES[dtype] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])
