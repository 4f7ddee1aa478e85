"""Every input encoding the package takes, built from real 7-Scenes pixels, with the RGB or metres it must give.

Shared by the offline round trip (test_image_encodings.py) and the cv_bridge cross-check under ROS 2
(test_image_encodings_ros.py), so both check the same bytes.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

BAYER_PATTERNS = ("rggb", "bggr", "gbrg", "grbg")
CHANNEL = {"r": 0, "g": 1, "b": 2}
UNIFORM = (200, 100, 30)  # Bayer and YUV 4:2:2 cases: one colour, so demosaicing and chroma sharing are exact


def kitchen_pixels(sevenscenes_dir: Path) -> dict:
    """A 64x48 crop of real 7-Scenes colour and depth, and the frame's JPEG bytes."""
    bgr = cv2.imread(str(sevenscenes_dir / "frame-000000.color.jpg"))
    millimetres = cv2.imread(str(sevenscenes_dir / "frame-000000.depth.png"), cv2.IMREAD_UNCHANGED)
    return {"rgb": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[200:248, 300:364],
            "millimetres": millimetres[200:248, 300:364],
            "jpeg": (sevenscenes_dir / "frame-000000.color.jpg").read_bytes()}


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The Bayer mosaic a sensor with `pattern` (top-left 2x2, row-major) records of `rgb`."""
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for index, colour in enumerate(pattern):
        out[index // 2::2, index % 2::2] = rgb[index // 2::2, index % 2::2, CHANNEL[colour]]
    return out


def colour_cases(rgb: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """encoding -> (pixels as a driver sends them, the RGB the network must get)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    alpha = np.full(rgb.shape[:2] + (1,), 77, np.uint8)
    grey_rgb = np.repeat(grey[..., None], 3, axis=2)
    eight_bit = {"rgb": (rgb, rgb), "bgr": (rgb[..., ::-1], rgb), "rgba": (np.concatenate([rgb, alpha], 2), rgb),
                 "bgra": (np.concatenate([rgb[..., ::-1], alpha], 2), rgb), "mono": (grey, grey_rgb)}
    cases = {}
    for name, (pixels, expected) in eight_bit.items():
        cases[f"{name}8"] = (np.ascontiguousarray(pixels), expected)
        cases[f"{name}16"] = (np.ascontiguousarray(pixels).astype(np.uint16) * 257, expected)  # 65535 / 255
    uniform = np.empty_like(rgb)
    uniform[:] = UNIFORM
    for pattern in BAYER_PATTERNS:
        cases[f"bayer_{pattern}8"] = (mosaic(uniform, pattern), uniform)
        cases[f"bayer_{pattern}16"] = (mosaic(uniform, pattern).astype(np.uint16) * 257, uniform)
    cases["yuv422"] = (cv2.cvtColor(uniform, cv2.COLOR_RGB2YUV_UYVY), uniform)  # ROS's yuv422 is UYVY
    cases["yuv422_yuy2"] = (cv2.cvtColor(uniform, cv2.COLOR_RGB2YUV_YUY2), uniform)
    return cases


def depth_cases(millimetres: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """encoding -> (pixels, float32 metres with NaN where invalid) from real 7-Scenes millimetres."""
    millimetres = millimetres.copy()
    millimetres[1, :4] = 0  # no return: REP 118's invalid 16UC1 value
    metres = np.where(millimetres > 0, millimetres / 1000.0, np.nan).astype(np.float32)
    as_float = metres.copy()
    as_float[0, :3] = (np.inf, -1.0, 0.0)  # REP 118 invalid values besides NaN
    expected_float = as_float.copy()
    expected_float[0, :3] = np.nan
    return {"16UC1": (millimetres, metres), "32FC1": (as_float, expected_float)}


def compressed_cases(rgb: np.ndarray, jpeg: bytes, millimetres: np.ndarray) -> dict[str, tuple[str, bytes, np.ndarray]]:
    """name -> (format string, encoded bytes, the RGB both libraries' decoding must give).

    cv_bridge and rosbags-image both decode with IMREAD_ANYCOLOR: alpha is dropped and a 16-bit PNG
    comes out as its high bytes, so depth cannot travel as a PNG CompressedImage through either.
    """
    def png(pixels: np.ndarray) -> bytes:
        ok, data = cv2.imencode(".png", pixels)
        assert ok
        return data.tobytes()

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    bgra = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 77, np.uint8)], axis=2)
    high_bytes = (millimetres >> 8).astype(np.uint8)
    jpeg_rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return {
        "jpeg": ("rgb8; jpeg compressed bgr8", jpeg, jpeg_rgb),
        "png": ("rgb8; png compressed bgr8", png(np.ascontiguousarray(rgb[..., ::-1])), rgb),
        "png_alpha": ("bgra8; png compressed bgra8", png(bgra), rgb),
        "png_mono": ("mono8; png compressed ", png(grey), np.repeat(grey[..., None], 3, axis=2)),
        "png_16bit_depth": ("16UC1; png compressed ", png(millimetres), np.repeat(high_bytes[..., None], 3, axis=2)),
    }


def raw_fields(pixels: np.ndarray, encoding: str, padding: int = 0, big_endian: bool = False) -> dict:
    """The sensor_msgs/Image fields a driver fills for `pixels` (rows of `padding` junk bytes after the pixels)."""
    height, width = pixels.shape[:2]
    dtype = pixels.dtype.newbyteorder(">" if big_endian else "<")
    rows = np.ascontiguousarray(pixels.astype(dtype)).reshape(height, -1).view(np.uint8)
    junk = np.full((height, padding), 0xAB, dtype=np.uint8)
    data = np.ascontiguousarray(np.concatenate([rows, junk], axis=1)).reshape(-1)
    return dict(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian),
                step=rows.shape[1] + padding, data=data)
