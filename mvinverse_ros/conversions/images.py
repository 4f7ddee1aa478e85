"""sensor_msgs/Image and CompressedImage <-> numpy: the package's image policy; decoding is a library's.

An input image is read in three steps, the same in the node and offline:

1. `check_image` / `check_compressed` refuse, before anything is allocated, an encoding the policy does
   not take, an empty image or one of more than `max_pixels` pixels (a CompressedImage measured by its
   header, read by Pillow's lazy open: OpenCV has no header-only read), and data that does not match
   width, height and step;
2. an `ImageDecoder` hands back the pixels as sent ('passthrough'): cv_bridge in the node
   (ros/images.py), rosbags-image offline (bag/images.py);
3. `rgb_from_pixels` / `depth_from_pixels` apply the policy: which encodings become the network's RGB
   and how, and the depth units (REP 118: 16UC1 millimetres with 0 invalid, 32FC1 metres with NaN/Inf
   and non-positive values invalid; both become float32 metres with NaN where invalid).

`rgb_from_msg` / `depth_from_msg` run the three. The package's own output maps (rgb8, 32FC1, 32FC3,
written here packed and little-endian) are read back by `image_to_rgb` / `float_image_to_array`.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import PIL.Image

from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import MessageFactory

UINT8, UINT16, FLOAT32 = np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)

# encoding -> (pixel type, channels, OpenCV conversion to RGB; None: already RGB). OpenCV names a Bayer
# pattern after its second row, so ROS's rggb is OpenCV's BG (as cv_bridge and rosbags-image map it).
_COLOUR_LAYOUTS = (("rgb", 3, None), ("bgr", 3, cv2.COLOR_BGR2RGB), ("rgba", 4, cv2.COLOR_RGBA2RGB),
                   ("bgra", 4, cv2.COLOR_BGRA2RGB), ("mono", 1, cv2.COLOR_GRAY2RGB),
                   ("bayer_rggb", 1, cv2.COLOR_BayerBG2RGB), ("bayer_bggr", 1, cv2.COLOR_BayerRG2RGB),
                   ("bayer_gbrg", 1, cv2.COLOR_BayerGR2RGB), ("bayer_grbg", 1, cv2.COLOR_BayerGB2RGB))
COLOUR_ENCODINGS = {
    **{f"{name}{bits}": (dtype, channels, code)
       for bits, dtype in ((8, UINT8), (16, UINT16)) for name, channels, code in _COLOUR_LAYOUTS},
    "yuv422": (UINT8, 2, cv2.COLOR_YUV2RGB_UYVY),  # ROS's yuv422 is UYVY
    "yuv422_yuy2": (UINT8, 2, cv2.COLOR_YUV2RGB_YUY2),
}
DEPTH_ENCODINGS = {"16UC1": (UINT16, 1, None), "32FC1": (FLOAT32, 1, None)}
# the map images this package publishes, packed and little-endian
FLOAT_ENCODINGS = {"32FC1": (FLOAT32, 1, None), "32FC3": (FLOAT32, 3, None)}
RGB_MAP_ENCODINGS = {"rgb8": (UINT8, 3, None)}
MAX_16BIT_PER_8BIT = 257  # 65535 / 255: a 16-bit value over this is its 8-bit value


class ImageDecoder(Protocol):
    """A library's 'passthrough' decoding of an input image: the pixels as sent, no colour conversion.

    Attributes:
        factory: builds the packed copy of a row-padded Image before `raw` sees it (rosbags-image
            ignores `step`, cv_bridge reads it in whole pixels only).
    """

    factory: MessageFactory

    def raw(self, msg: Any) -> np.ndarray:
        """HxW or HxWxC pixels of a checked, packed Image in native byte order.

        Raises:
            ConversionError: the library's reason.
        """

    def compressed(self, msg: Any) -> np.ndarray:
        """HxW grey or HxWx3 BGR pixels decoded from a checked CompressedImage.

        Raises:
            ConversionError: the library's reason.
        """


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


def _layout(encodings: dict[str, tuple], encoding: str, what: str) -> tuple:
    try:
        return encodings[encoding]
    except KeyError:
        raise ConversionError(f"unsupported {what} encoding {encoding!r}; expected one of "
                              f"{', '.join(encodings)}") from None


def check_image(msg: Any, encodings: dict[str, tuple], what: str, max_pixels: int | None) -> int:
    """Check an Image against the policy's `encodings` before it is decoded.

    Returns:
        The bytes of one row without padding.

    Raises:
        ConversionError: an encoding not in `encodings` (named `what`), an empty image or one of more
            than `max_pixels` pixels, or data that does not match width, height and step.
    """
    dtype, channels, _ = _layout(encodings, msg.encoding, what)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    check_size(width, height, max_pixels, f"{msg.encoding} image")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ConversionError(f"{msg.encoding} image {width}x{height}: step {step} < {row_bytes} bytes per row")
    size = payload(msg.data).size
    if size != step * height:
        raise ConversionError(f"{msg.encoding} image {width}x{height} with step {step} needs "
                              f"{step * height} bytes of data, got {size}")
    return row_bytes


def packed_image(factory: MessageFactory, msg: Any, row_bytes: int) -> Any:
    """`msg` itself when its rows are packed, else a copy without the row padding."""
    if int(msg.step) == row_bytes:
        return msg
    rows = payload(msg.data).reshape(int(msg.height), int(msg.step))[:, :row_bytes]
    return factory.new("sensor_msgs/msg/Image", header=msg.header, height=msg.height, width=msg.width,
                       encoding=msg.encoding, is_bigendian=msg.is_bigendian, step=row_bytes,
                       data=factory.array(np.ascontiguousarray(rows).reshape(-1)))


def check_compressed(msg: Any, max_pixels: int | None) -> None:
    """Check a CompressedImage's header size before it is decoded.

    Raises:
        ConversionError: neither an image header Pillow reads, or a size that is empty or over `max_pixels`.
    """
    width, height = encoded_size(payload(msg.data).tobytes())
    check_size(width, height, max_pixels, "CompressedImage")


def decoded_encoding(pixels: np.ndarray) -> str:
    """The encoding of pixels OpenCV decoded from a CompressedImage: grey, BGR or BGRA, 8 or 16 bit.

    Raises:
        ConversionError: another channel count or pixel type.
    """
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    name = {1: "mono", 3: "bgr", 4: "bgra"}.get(channels)
    bits = {UINT8: 8, UINT16: 16}.get(pixels.dtype)
    if name is None or bits is None:
        raise ConversionError(f"decoded image of {channels} channels of {pixels.dtype} has no colour encoding")
    return f"{name}{bits}"


def _check_pixels(pixels: np.ndarray, layout: tuple, encoding: str) -> None:
    dtype, channels, _ = layout
    if pixels.dtype != dtype or pixels.shape[2:] != ((channels,) if channels > 1 else ()):
        raise ConversionError(f"{encoding} decoded to {pixels.dtype} of shape {pixels.shape}, not {channels} "
                              f"channel(s) of {dtype}")


def rgb_from_pixels(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """HxWx3 uint8 RGB, the network's input, from a colour encoding's decoded pixels.

    Grey is replicated, BGR(A) reordered, alpha dropped, Bayer mosaics demosaiced (OpenCV's bilinear)
    and YUV 4:2:2 converted; 16-bit values are scaled to 8 bit (v * 255 / 65535, rounded, as cv_bridge
    converts between depths).

    Raises:
        ConversionError: an encoding the policy does not take, or pixels that do not match it.
    """
    layout = _layout(COLOUR_ENCODINGS, encoding, "colour")
    _check_pixels(pixels, layout, encoding)
    dtype, _, code = layout
    rgb = pixels.copy() if code is None else cv2.cvtColor(pixels, code)  # a copy: not a view of a message
    if dtype == UINT16:
        rgb = np.rint(rgb / MAX_16BIT_PER_8BIT).astype(np.uint8)
    return rgb


def depth_from_pixels(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """HxW float32 depth in metres, NaN where invalid, from 16UC1 (mm, 0 invalid) or 32FC1 (m) pixels.

    Raises:
        ConversionError: another encoding, or pixels that do not match it.
    """
    layout = _layout(DEPTH_ENCODINGS, encoding, "depth")
    _check_pixels(pixels, layout, encoding)
    if encoding == "16UC1":
        depth = pixels.astype(np.float32) * np.float32(0.001)
        depth[pixels == 0] = np.nan
        return depth
    depth = pixels.astype(np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


def rgb_from_msg(msg: Any, decoder: ImageDecoder, max_pixels: int | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB from an Image or a CompressedImage (told apart by their fields): check, decode, policy.

    Raises:
        ConversionError: what `check_image` / `check_compressed`, the decoder or `rgb_from_pixels` refuse
            (for a CompressedImage with its format string and byte count).
    """
    if not hasattr(msg, "format"):
        row_bytes = check_image(msg, COLOUR_ENCODINGS, "colour", max_pixels)
        return rgb_from_pixels(decoder.raw(packed_image(decoder.factory, msg, row_bytes)), msg.encoding)
    try:
        check_compressed(msg, max_pixels)
        pixels = decoder.compressed(msg)
        return rgb_from_pixels(pixels, decoded_encoding(pixels))
    except ConversionError as err:
        raise ConversionError(f"could not decode CompressedImage (format {msg.format!r}, "
                              f"{payload(msg.data).size} bytes): {err}") from None


def depth_from_msg(msg: Any, decoder: ImageDecoder, max_pixels: int | None = None) -> np.ndarray:
    """HxW float32 metres, NaN where invalid, from a 16UC1 or 32FC1 Image: check, decode, policy.

    Raises:
        ConversionError: what `check_image`, the decoder or `depth_from_pixels` refuse.
    """
    row_bytes = check_image(msg, DEPTH_ENCODINGS, "depth", max_pixels)
    return depth_from_pixels(decoder.raw(packed_image(decoder.factory, msg, row_bytes)), msg.encoding)


def _own_map_pixels(msg: Any, encodings: dict[str, tuple], what: str) -> np.ndarray:
    """HxWxC pixels of one of this package's map Images, checked like an input."""
    dtype, channels, _ = _layout(encodings, msg.encoding, what)
    row_bytes = check_image(msg, encodings, what, None)
    if int(msg.step) != row_bytes or msg.is_bigendian:
        raise ConversionError(f"{msg.encoding} map is not packed little-endian as this package writes it")
    pixels = payload(msg.data).view(dtype.newbyteorder("<")).reshape(int(msg.height), int(msg.width), channels)
    return pixels.astype(dtype, copy=False)


def image_to_rgb(msg: Any) -> np.ndarray:
    """HxWx3 uint8 from an rgb8 map Image this package published (e.g. albedo).

    Raises:
        ConversionError: another encoding, or data that is not the packed layout written here.
    """
    return _own_map_pixels(msg, RGB_MAP_ENCODINGS, "map image")


def float_image_to_array(msg: Any) -> np.ndarray:
    """HxW (32FC1) or HxWx3 (32FC3) float32 from a float map Image this package published.

    Raises:
        ConversionError: another encoding, or data that is not the packed layout written here.
    """
    pixels = _own_map_pixels(msg, FLOAT_ENCODINGS, "float map")
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


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
