"""Image / CompressedImage / depth conversions through real CDR round trips and real 7-Scenes files."""
from __future__ import annotations

import array
import struct
import zlib

import cv2
import numpy as np
import pytest

from mvinverse_ros.conversions import ConversionError, header_msg
from mvinverse_ros.bag.images import RosbagsImageDecoder
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions.images import (
    compressed_image_msg,
    depth_from_msg,
    depth_image_msg,
    float_image_msg,
    float_image_to_array,
    image_to_rgb,
    rgb_from_msg,
    rgb_image_msg,
)

STORE = typestore_with_project_types("humble")
FACTORY = RosbagsMessageFactory(STORE)
DECODER = RosbagsImageDecoder(FACTORY)


def cdr_round_trip(msg):
    return STORE.deserialize_cdr(bytes(STORE.serialize_cdr(msg, msg.__msgtype__)), msg.__msgtype__)


def header():
    return header_msg(FACTORY, 1_700_000_000_123_456_789, "camera_color_optical_frame")


def raw_image(pixels: np.ndarray, encoding: str, padding: int = 0, big_endian: bool = False):
    """An Image built by hand the way a driver fills it (rows of `padding` junk bytes after the pixels)."""
    height, width = pixels.shape[:2]
    dtype = pixels.dtype.newbyteorder(">" if big_endian else "<")
    rows = pixels.astype(dtype).reshape(height, -1).view(np.uint8)
    junk = np.full((height, padding), 0xAB, dtype=np.uint8)
    data = np.ascontiguousarray(np.concatenate([rows, junk], axis=1)).reshape(-1)
    return FACTORY.new("sensor_msgs/msg/Image", header=header(), height=height, width=width, encoding=encoding,
                       is_bigendian=int(big_endian), step=rows.shape[1] + padding, data=data)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.fixture(scope="module")
def kitchen_rgb(sevenscenes_dir) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(sevenscenes_dir / "frame-000000.color.jpg")), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("padding", [0, 5])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_colour_encodings_to_rgb(kitchen_rgb, encoding, padding):
    rgb = kitchen_rgb[:120, :161]  # odd width: padding and alignment both matter
    alpha = np.full(rgb.shape[:2] + (1,), 200, dtype=np.uint8)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "rgba8": np.concatenate([rgb, alpha], axis=2),
              "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2), "mono8": grey}[encoding]
    msg = cdr_round_trip(raw_image(np.ascontiguousarray(pixels), encoding, padding))
    expected = np.repeat(grey[..., None], 3, axis=2) if encoding == "mono8" else rgb
    out = rgb_from_msg(msg, DECODER)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    np.testing.assert_array_equal(out, expected)


def test_rclpy_payload_types_read_the_same(kitchen_rgb):
    """rclpy hands uint8[] over as array.array; bytes must work as well."""
    msg = raw_image(kitchen_rgb[:10, :10].copy(), "rgb8", padding=2)
    for data in (array.array("B", msg.data.tobytes()), msg.data.tobytes()):
        msg.data = data
        np.testing.assert_array_equal(rgb_from_msg(msg, DECODER), kitchen_rgb[:10, :10])


def test_rgb_image_msg_round_trip(kitchen_rgb):
    msg = cdr_round_trip(rgb_image_msg(FACTORY, kitchen_rgb, header()))
    assert (msg.encoding, msg.step, msg.is_bigendian) == ("rgb8", 640 * 3, 0)
    assert msg.header.frame_id == "camera_color_optical_frame" and msg.header.stamp.nanosec == 123_456_789
    np.testing.assert_array_equal(image_to_rgb(msg), kitchen_rgb)
    as_float = rgb_image_msg(FACTORY, np.array([[[0.0, 0.5, 1.2]]], dtype=np.float32), header())
    np.testing.assert_array_equal(image_to_rgb(as_float), [[[0, 128, 255]]])


def test_bad_images_name_the_problem(kitchen_rgb):
    with pytest.raises(ConversionError, match="'8UC2'"):
        rgb_from_msg(raw_image(kitchen_rgb[:4, :4, :2].copy(), "8UC2"), DECODER)
    short = raw_image(kitchen_rgb[:4, :4].copy(), "rgb8")
    short.data = short.data[:-1]
    with pytest.raises(ConversionError, match="needs 48 bytes of data, got 47"):
        rgb_from_msg(short, DECODER)
    narrow = raw_image(kitchen_rgb[:4, :4].copy(), "rgb8")
    narrow.step = 10
    with pytest.raises(ConversionError, match="step 10 < 12"):
        rgb_from_msg(narrow, DECODER)
    with pytest.raises(ConversionError, match="not packed little-endian"):
        image_to_rgb(raw_image(kitchen_rgb[:4, :4].copy(), "rgb8", padding=1))
    with pytest.raises(ConversionError, match="HxWx3"):
        rgb_image_msg(FACTORY, kitchen_rgb[..., 0], header())


def test_real_jpeg_compressed_image(sevenscenes_dir, kitchen_rgb):
    jpeg = (sevenscenes_dir / "frame-000000.color.jpg").read_bytes()
    msg = cdr_round_trip(compressed_image_msg(FACTORY, jpeg, "rgb8; jpeg compressed bgr8", header()))
    np.testing.assert_array_equal(rgb_from_msg(msg, DECODER), kitchen_rgb)


def test_png_compressed_image_is_lossless(kitchen_rgb):
    ok, png = cv2.imencode(".png", cv2.cvtColor(kitchen_rgb, cv2.COLOR_RGB2BGR))
    assert ok
    msg = cdr_round_trip(compressed_image_msg(FACTORY, png.tobytes(), "png", header()))
    np.testing.assert_array_equal(rgb_from_msg(msg, DECODER), kitchen_rgb)


def test_undecodable_compressed_image(sevenscenes_dir):
    jpeg = (sevenscenes_dir / "frame-000000.color.jpg").read_bytes()
    with pytest.raises(ConversionError, match=r"format 'jpeg', 100 bytes"):
        rgb_from_msg(compressed_image_msg(FACTORY, b"\x00" * 100, "jpeg", header()), DECODER)
    with pytest.raises(ConversionError, match="0 bytes"):
        rgb_from_msg(compressed_image_msg(FACTORY, jpeg[:0], "jpeg", header()), DECODER)
    ok, png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    broken = png.tobytes()[:33] + png_chunk(b"IDAT", b"\xff" * 20) + png_chunk(b"IEND", b"")  # header, bad data
    with pytest.raises(ConversionError, match="OpenCV could not decode"):
        rgb_from_msg(compressed_image_msg(FACTORY, broken, "png", header()), DECODER)


@pytest.fixture(scope="module")
def kitchen_millimetres(sevenscenes_dir) -> np.ndarray:
    millimetres = cv2.imread(str(sevenscenes_dir / "frame-000000.depth.png"), cv2.IMREAD_UNCHANGED)
    assert millimetres.dtype == np.uint16 and (millimetres == 0).any()
    return millimetres


@pytest.mark.parametrize("padding, big_endian", [(0, False), (6, False), (0, True)])
def test_real_16uc1_depth_is_metres_with_nan_holes(kitchen_millimetres, padding, big_endian):
    msg = cdr_round_trip(raw_image(kitchen_millimetres, "16UC1", padding, big_endian))
    depth = depth_from_msg(msg, DECODER)
    assert depth.dtype == np.float32 and depth.shape == (480, 640)
    holes = kitchen_millimetres == 0
    np.testing.assert_array_equal(np.isnan(depth), holes)
    np.testing.assert_allclose(depth[~holes], kitchen_millimetres[~holes] / 1000.0, rtol=1e-6)


def test_depth_msgs_written_back(kitchen_millimetres):
    depth = np.where(kitchen_millimetres > 0, kitchen_millimetres / 1000.0, np.nan).astype(np.float32)
    as_mm = cdr_round_trip(depth_image_msg(FACTORY, depth, header()))
    assert as_mm.encoding == "16UC1"
    np.testing.assert_array_equal(as_mm.data.view("<u2").reshape(480, 640), kitchen_millimetres)
    as_m = cdr_round_trip(depth_image_msg(FACTORY, depth, header(), encoding="32FC1"))
    np.testing.assert_array_equal(depth_from_msg(as_m, DECODER), depth)
    with pytest.raises(ConversionError, match="65.535"):
        depth_image_msg(FACTORY, depth + 100.0, header())


def test_32fc1_depth_invalid_values_follow_rep118():
    values = np.array([[1.5, np.nan, np.inf], [-np.inf, 0.0, -2.0]], dtype=np.float32)
    for big_endian in (False, True):
        depth = depth_from_msg(cdr_round_trip(raw_image(values, "32FC1", padding=4, big_endian=big_endian)), DECODER)
        np.testing.assert_array_equal(depth, [[1.5, np.nan, np.nan], [np.nan, np.nan, np.nan]])
    with pytest.raises(ConversionError, match="'mono16'"):
        depth_from_msg(raw_image(np.zeros((2, 2), np.uint16), "mono16"), DECODER)


def test_float_maps_round_trip_exactly():
    rng = np.random.default_rng(0)
    grey = rng.uniform(size=(7, 9)).astype(np.float32)
    colour = rng.normal(size=(7, 9, 3)).astype(np.float32)
    grey_msg, colour_msg = cdr_round_trip(float_image_msg(FACTORY, grey, header())), cdr_round_trip(
        float_image_msg(FACTORY, colour, header()))
    assert (grey_msg.encoding, grey_msg.step, colour_msg.encoding, colour_msg.step) == ("32FC1", 36, "32FC3", 108)
    np.testing.assert_array_equal(float_image_to_array(grey_msg), grey)
    np.testing.assert_array_equal(float_image_to_array(colour_msg), colour)
    np.testing.assert_array_equal(float_image_to_array(float_image_msg(FACTORY, grey[..., None], header())), grey)
    with pytest.raises(ConversionError, match="HxW or HxWx3"):
        float_image_msg(FACTORY, colour[..., :2], header())
