"""Compact, lossless-within-a-bound encodings of the output maps for bags (sensor_msgs/CompressedImage PNG).

A float map stored as 32FC1/32FC3 Image costs 4 bytes per channel and pixel, uncompressed. Every map
here lives in [0, 1] (albedo, roughness, metallic, shading) or is a unit normal (mapped to
n * 0.5 + 0.5), so 16-bit PNG keeps it to within half a step plus float32 rounding:
|decoded - value| <= 1 / 65535 for values in [0, 1] (normals, which decode as 2 x - 1: <= 2 / 65535
per component). RViz's and Foxglove's image displays decode PNG CompressedImage messages, 16-bit
included. The format string follows image_transport's
compressed plugin: '<encoding>; png compressed <encoding>'.
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import numpy as np

from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import MessageFactory
from mvinverse_ros.conversions.images import compressed_image_msg

UNIT_STEPS = 65535
# Max absolute error after encode -> decode: half a step of rounding plus float32 arithmetic.
UNIT_ERROR_BOUND = 1 / UNIT_STEPS
NORMAL_ERROR_BOUND = 2 / UNIT_STEPS


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG bytes of HxW or HxWx3 (RGB order) pixels; cv2 writes 16-bit PNG for uint16.

    Raises:
        ConversionError: OpenCV cannot encode the array.
    """
    bgr = pixels[..., ::-1] if pixels.ndim == 3 else pixels
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise ConversionError(f"Could not PNG-encode a {pixels.shape} {pixels.dtype} map")
    return encoded.tobytes()


@functools.cache
def _encoders() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="png")


def png_bytes_many(images: list[np.ndarray]) -> list[bytes]:
    """png_bytes of each image, side by side on worker threads.

    cv2.imencode releases the GIL, so a frame's seven maps encode side by side (measured on the
    demo's 640x480 maps on two cores: 90 ms -> 66 ms per frame; the two 16-bit RGB maps dominate).
    """
    return list(_encoders().map(png_bytes, images))


def unit16_pixels(values: np.ndarray) -> np.ndarray:
    """uint16 pixels of a float map in [0, 1] (HxW or HxWx3); values outside are clipped."""
    return np.rint(np.clip(values, 0.0, 1.0) * UNIT_STEPS).astype(np.uint16)


def encode_unit16(values: np.ndarray) -> bytes:
    """16-bit PNG of a float map in [0, 1] (HxW or HxWx3); values outside are clipped."""
    return png_bytes(unit16_pixels(values))


def decode_unit16(data: bytes) -> np.ndarray:
    """float32 map in [0, 1] from encode_unit16's PNG (HxW or HxWx3, RGB order).

    Raises:
        ConversionError: bytes that are not a 16-bit PNG.
    """
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16:
        raise ConversionError("not a 16-bit PNG map")
    rgb = pixels[..., ::-1] if pixels.ndim == 3 else pixels
    return rgb.astype(np.float32) / UNIT_STEPS


def encode_normal16(normal: np.ndarray) -> bytes:
    """16-bit PNG of HxWx3 unit normals as n * 0.5 + 0.5."""
    return encode_unit16(normal * 0.5 + 0.5)


def decode_normal16(data: bytes) -> np.ndarray:
    """HxWx3 normals (not renormalised: within NORMAL_ERROR_BOUND per component of the encoded ones)."""
    return decode_unit16(data) * 2.0 - 1.0


def png_map_msg(factory: MessageFactory, png: bytes, encoding: str, header: Any) -> Any:
    """CompressedImage of PNG bytes whose pixels are `encoding` (rgb8, mono16, rgb16).

    The format string is image_transport's compressed plugin's: '<encoding>; png compressed <encoding>'.
    """
    return compressed_image_msg(factory, png, f"{encoding}; png compressed {encoding}", header)
