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


def _png(pixels: np.ndarray) -> bytes:
    """PNG bytes of HxW or HxWx3 (RGB order) pixels; cv2 writes 16-bit PNG for uint16."""
    bgr = pixels[..., ::-1] if pixels.ndim == 3 else pixels
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        raise ConversionError(f"Could not PNG-encode a {pixels.shape} {pixels.dtype} map")
    return encoded.tobytes()


def encode_unit16(values: np.ndarray) -> bytes:
    """16-bit PNG of a float map in [0, 1] (HxW or HxWx3); values outside are clipped."""
    return _png(np.rint(np.clip(values, 0.0, 1.0) * UNIT_STEPS).astype(np.uint16))


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


def unit_map_msg(factory: MessageFactory, values: np.ndarray, header: Any) -> Any:
    """CompressedImage (16-bit PNG) of a [0, 1] float map: mono16 for HxW, rgb16 for HxWx3."""
    encoding = "rgb16" if values.ndim == 3 else "mono16"
    return compressed_image_msg(factory, encode_unit16(values), f"{encoding}; png compressed {encoding}", header)


def normal_map_msg(factory: MessageFactory, normal: np.ndarray, header: Any) -> Any:
    """CompressedImage (16-bit rgb16 PNG) of unit normals stored as n * 0.5 + 0.5."""
    return compressed_image_msg(factory, encode_normal16(normal), "rgb16; png compressed rgb16", header)


def rgb8_map_msg(factory: MessageFactory, rgb: np.ndarray, header: Any) -> Any:
    """CompressedImage (8-bit PNG) of an HxWx3 uint8 RGB rendering (the *_visual topics)."""
    return compressed_image_msg(factory, _png(rgb), "rgb8; png compressed rgb8", header)
