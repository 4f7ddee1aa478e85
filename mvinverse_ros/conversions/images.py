"""sensor_msgs/Image and CompressedImage <-> numpy, for colour, depth (REP 118) and float maps.

Reading honours `step` (row padding) and `is_bigendian`; depth always comes out as float32
metres with NaN where invalid: 16UC1 is millimetres with 0 = invalid, 32FC1 is metres with
NaN/Inf (and non-positive values) invalid.

Every reader takes `max_pixels` and refuses a larger (or empty) image before allocating it: a
raw Image by its declared width and height, a CompressedImage by the size in its header, read by
Pillow's lazy open (OpenCV has no header-only read).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import PIL.Image

from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import MessageFactory

# encoding -> (channels, channel order that gives RGB; None = grey replicated)
COLOUR_ENCODINGS = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, None),
}
DEPTH_ENCODINGS = ("16UC1", "32FC1")
# encoding -> (numpy base type, channels) of the float maps this package publishes
FLOAT_ENCODINGS = {"32FC1": 1, "32FC3": 3}


def payload(data: Any) -> np.ndarray:
    """A uint8[] field (numpy array in rosbags, array.array in rclpy, or bytes) as a 1-D uint8 array."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def check_size(width: int, height: int, max_pixels: int | None, what: str) -> None:
    """Refuse an empty image, or one of more than `max_pixels` pixels (None: no limit).

    Raises:
        ConversionError: naming `what`, the size and the limit.
    """
    if width <= 0 or height <= 0:
        raise ConversionError(f"{what} is empty: {width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise ConversionError(f"{what} is {width}x{height} = {width * height} pixels, more than "
                              f"inputs.max_pixels {max_pixels}")


def encoded_size(data: bytes | str | Path) -> tuple[int, int]:
    """(width, height) of an encoded image (bytes, or a file) read from its header alone.

    Pillow's lazy open parses only the header, so a small file that would decode to gigabytes is
    measured without being decoded.

    Raises:
        ConversionError: not an image format Pillow knows, or a header without a size.
    """
    try:
        source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        with warnings.catch_warnings():  # the size is checked against inputs.max_pixels by the caller
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(source) as image:
                return image.size
    except PIL.Image.DecompressionBombError as err:  # over twice Pillow's own limit: far past any camera
        raise ConversionError(str(err)) from None
    except (OSError, ValueError) as err:
        head = bytes(data[:8]).hex() if isinstance(data, (bytes, bytearray, memoryview)) else str(data)
        raise ConversionError(f"not a readable image header ({head or 'empty'}): {err}") from None


def _pixels(msg: Any, scalar: type[np.generic], channels: int, max_pixels: int | None) -> np.ndarray:
    """HxWxC view of an Image's data, dropping row padding, in native byte order."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    check_size(width, height, max_pixels, f"{msg.encoding} image")
    dtype = np.dtype(scalar).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = width * channels * dtype.itemsize
    data = payload(msg.data)
    if step < row_bytes:
        raise ConversionError(f"{msg.encoding} image {width}x{height}: step {step} < {row_bytes} bytes per row")
    if data.size != step * height:
        raise ConversionError(f"{msg.encoding} image {width}x{height} with step {step} needs "
                              f"{step * height} bytes of data, got {data.size}")
    rows = data.reshape(height, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    return pixels.astype(dtype.newbyteorder("="), copy=False)


def image_to_rgb(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB from a raw colour Image (rgb8, bgr8, rgba8, bgra8, mono8).

    Raises:
        ConversionError: another encoding, data that does not match width, height and step, or
            an empty image or one of more than `max_pixels` pixels.
    """
    try:
        channels, order = COLOUR_ENCODINGS[msg.encoding]
    except KeyError:
        raise ConversionError(f"unsupported colour encoding {msg.encoding!r}; expected one of "
                              f"{', '.join(COLOUR_ENCODINGS)}") from None
    pixels = _pixels(msg, np.uint8, channels, max_pixels)
    if order is None:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, list(order)])


def compressed_to_rgb(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB from a CompressedImage (jpeg or png, any format string image_transport writes).

    The header's size is checked against `max_pixels` before anything is decoded.

    Raises:
        ConversionError: neither PNG nor JPEG, a header size that is empty or over `max_pixels`,
            or data OpenCV cannot decode (the format string and byte count are named).
    """
    data = payload(msg.data)
    try:
        width, height = encoded_size(data.tobytes())
        check_size(width, height, max_pixels, "CompressedImage")
    except ConversionError as err:
        raise ConversionError(f"could not decode CompressedImage (format {msg.format!r}, {data.size} bytes): "
                              f"{err}") from None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConversionError(f"could not decode CompressedImage (format {msg.format!r}, {data.size} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_from_msg(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """RGB uint8 from either an Image or a CompressedImage (told apart by their fields)."""
    return compressed_to_rgb(msg, max_pixels) if hasattr(msg, "format") else image_to_rgb(msg, max_pixels)


def depth_to_metres(msg: Any, max_pixels: int | None = None) -> np.ndarray:
    """HxW float32 depth in metres, NaN where invalid, from a 16UC1 (mm) or 32FC1 (m) Image.

    Raises:
        ConversionError: another encoding, data that does not match width, height and step, or
            an empty image or one of more than `max_pixels` pixels.
    """
    if msg.encoding == "16UC1":
        millimetres = _pixels(msg, np.uint16, 1, max_pixels)[:, :, 0]
        depth = millimetres.astype(np.float32) * np.float32(0.001)
        depth[millimetres == 0] = np.nan
        return depth
    if msg.encoding == "32FC1":
        depth = _pixels(msg, np.float32, 1, max_pixels)[:, :, 0].copy()
        with np.errstate(invalid="ignore"):
            depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
        return depth
    raise ConversionError(f"unsupported depth encoding {msg.encoding!r}; expected one of {', '.join(DEPTH_ENCODINGS)}")


def float_image_to_array(msg: Any) -> np.ndarray:
    """HxW (32FC1) or HxWx3 (32FC3) float32 from a float map Image.

    Raises:
        ConversionError: another encoding, or data that does not match width, height and step.
    """
    try:
        channels = FLOAT_ENCODINGS[msg.encoding]
    except KeyError:
        raise ConversionError(f"unsupported float map encoding {msg.encoding!r}; expected one of "
                              f"{', '.join(FLOAT_ENCODINGS)}") from None
    pixels = _pixels(msg, np.float32, channels, None)
    return pixels[:, :, 0] if channels == 1 else pixels


def _image_msg(factory: MessageFactory, pixels: np.ndarray, encoding: str, header: Any) -> Any:
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    return factory.new(
        "sensor_msgs/msg/Image", header=header, height=height, width=width, encoding=encoding,
        is_bigendian=0, step=pixels.nbytes // max(height, 1),
        data=factory.array(pixels.reshape(-1).view(np.uint8)),
    )


def rgb_image_msg(factory: MessageFactory, rgb: np.ndarray, header: Any) -> Any:
    """rgb8 Image from HxWx3 uint8, or float in [0, 1] (clipped, rounded to 0..255).

    Raises:
        ConversionError: an array that is not HxWx3.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConversionError(f"rgb8 image needs an HxWx3 array, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        rgb = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    return _image_msg(factory, rgb, "rgb8", header)


def float_image_msg(factory: MessageFactory, values: np.ndarray, header: Any) -> Any:
    """32FC1 Image from HxW (or HxWx1) floats, 32FC3 from HxWx3 floats (little-endian).

    Raises:
        ConversionError: any other shape.
    """
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim == 2:
        encoding = "32FC1"
    elif values.ndim == 3 and values.shape[2] == 3:
        encoding = "32FC3"
    else:
        raise ConversionError(f"a float map Image needs HxW or HxWx3, got shape {values.shape}")
    return _image_msg(factory, values.astype("<f4"), encoding, header)


def depth_image_msg(factory: MessageFactory, depth_m: np.ndarray, header: Any, encoding: str = "16UC1") -> Any:
    """Depth Image from HxW metres (NaN invalid): 16UC1 millimetres (0 invalid) or 32FC1 metres.

    Raises:
        ConversionError: another encoding, or depth beyond 16UC1's 65.535 m.
    """
    if encoding == "32FC1":
        return _image_msg(factory, depth_m.astype("<f4"), encoding, header)
    if encoding != "16UC1":
        raise ConversionError(f"unsupported depth encoding {encoding!r}; expected one of {', '.join(DEPTH_ENCODINGS)}")
    millimetres = np.round(np.nan_to_num(depth_m, nan=0.0) * 1000.0)
    if millimetres.max(initial=0) > np.iinfo(np.uint16).max or millimetres.min(initial=0) < 0:
        raise ConversionError("depth outside 0..65.535 m cannot be written as 16UC1 millimetres")
    return _image_msg(factory, millimetres.astype("<u2"), encoding, header)


def compressed_image_msg(factory: MessageFactory, encoded: bytes, image_format: str, header: Any) -> Any:
    """CompressedImage carrying already-encoded bytes (e.g. a JPEG file as recorded)."""
    return factory.new("sensor_msgs/msg/CompressedImage", header=header, format=image_format,
                       data=factory.array(np.frombuffer(encoded, dtype=np.uint8)))
