"""Every input encoding through a real CDR round trip and the offline decoding (rosbags-image, then the policy)."""
from __future__ import annotations

import numpy as np
import pytest

from image_encoding_cases import (
    BAYER_PATTERNS, CHANNEL, colour_cases, compressed_cases, depth_cases, kitchen_pixels, mosaic, raw_fields,
)
from mvinverse_ros.bag.images import RosbagsImageDecoder
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions import header_msg
from mvinverse_ros.conversions.images import (
    COLOUR_ENCODINGS, DEPTH_ENCODINGS, compressed_image_msg, depth_from_msg, rgb_from_msg,
)

STORE = typestore_with_project_types("humble")
FACTORY = RosbagsMessageFactory(STORE)
DECODER = RosbagsImageDecoder(FACTORY)
LAYOUTS = [(0, False), (6, False), (0, True)]  # packed, row padding, big-endian


def cdr_round_trip(msg):
    return STORE.deserialize_cdr(bytes(STORE.serialize_cdr(msg, msg.__msgtype__)), msg.__msgtype__)


def image_msg(pixels: np.ndarray, encoding: str, padding: int = 0, big_endian: bool = False):
    header = header_msg(FACTORY, 1_700_000_000_123_456_789, "camera_color_optical_frame")
    return cdr_round_trip(FACTORY.new("sensor_msgs/msg/Image", header=header,
                                      **raw_fields(pixels, encoding, padding, big_endian)))


@pytest.fixture(scope="module")
def kitchen(sevenscenes_dir) -> dict:
    return kitchen_pixels(sevenscenes_dir)


def test_every_policy_encoding_has_a_case(kitchen):
    assert set(colour_cases(kitchen["rgb"])) == set(COLOUR_ENCODINGS)
    assert set(depth_cases(kitchen["millimetres"])) == set(DEPTH_ENCODINGS)


@pytest.mark.parametrize("padding, big_endian", LAYOUTS)
@pytest.mark.parametrize("encoding", sorted(COLOUR_ENCODINGS))
def test_colour_encoding_becomes_the_networks_rgb(kitchen, encoding, padding, big_endian):
    pixels, expected = colour_cases(kitchen["rgb"])[encoding]
    rgb = rgb_from_msg(image_msg(pixels, encoding, padding, big_endian), DECODER)
    assert rgb.dtype == np.uint8 and rgb.shape == expected.shape
    if encoding.startswith(("bayer", "yuv")):  # uniform colour: exact but for OpenCV's rounding and the borders
        assert np.abs(rgb[2:-2, 2:-2].astype(int) - expected[2:-2, 2:-2]).max() <= 1
    else:
        np.testing.assert_array_equal(rgb, expected)


def test_16bit_colour_is_scaled_with_rounding():
    values = np.array([[0, 128, 129, 385, 65535, 32896]], np.uint16)  # 128/257 rounds down, 129/257 up
    rgb = rgb_from_msg(image_msg(values, "mono16"), DECODER)
    np.testing.assert_array_equal(rgb[..., 0], [[0, 0, 1, 1, 255, 128]])


def test_bayer_keeps_each_measured_sample(kitchen):
    """On real pixels, demosaicing keeps what each photosite measured, in the pattern's colour."""
    rgb = kitchen["rgb"]
    for pattern in BAYER_PATTERNS:
        out = rgb_from_msg(image_msg(mosaic(rgb, pattern), f"bayer_{pattern}8"), DECODER)
        for index, colour in enumerate(pattern):
            rows, cols = slice(2 + index // 2, -2, 2), slice(2 + index % 2, -2, 2)
            np.testing.assert_array_equal(out[rows, cols, CHANNEL[colour]], rgb[rows, cols, CHANNEL[colour]])


@pytest.mark.parametrize("padding, big_endian", LAYOUTS)
@pytest.mark.parametrize("encoding", sorted(DEPTH_ENCODINGS))
def test_depth_encoding_becomes_metres(kitchen, encoding, padding, big_endian):
    pixels, expected = depth_cases(kitchen["millimetres"])[encoding]
    depth = depth_from_msg(image_msg(pixels, encoding, padding, big_endian), DECODER)
    assert depth.dtype == np.float32 and np.isnan(depth).any()
    np.testing.assert_allclose(depth, expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["jpeg", "png", "png_alpha", "png_mono", "png_16bit_depth"])
def test_compressed_image_becomes_the_networks_rgb(kitchen, name):
    image_format, data, expected = compressed_cases(kitchen["rgb"], kitchen["jpeg"], kitchen["millimetres"])[name]
    header = header_msg(FACTORY, 1_700_000_000_123_456_789, "camera_color_optical_frame")
    msg = cdr_round_trip(compressed_image_msg(FACTORY, data, image_format, header))
    np.testing.assert_array_equal(rgb_from_msg(msg, DECODER), expected)
