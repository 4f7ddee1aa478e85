"""16-bit PNG CompressedImage encodings of the output maps: error bound, CDR round trip, size on real maps."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions.encoding import (NORMAL_ERROR_BOUND, UNIT_ERROR_BOUND, decode_normal16, decode_unit16,
                                                encode_normal16, encode_unit16, png_bytes, png_bytes_many,
                                                png_map_msg)
from mvinverse_ros.conversions.factory import header_msg


@pytest.fixture(scope="module")
def image(sevenscenes_dir) -> np.ndarray:
    """A real kitchen frame as floats in [0, 1] (a stand-in for a smooth albedo/shading map)."""
    first = sorted(sevenscenes_dir.glob("frame-*.color.jpg"))[0]
    return cv2.imread(str(first))[..., ::-1].astype(np.float32) / 255.0


def test_unit_maps_round_trip_within_the_bound(image):
    gray = image.mean(axis=-1)
    for values in (image, gray, np.linspace(0, 1, 4096, dtype=np.float32).reshape(64, 64)):
        decoded = decode_unit16(encode_unit16(values))
        assert decoded.shape == values.shape
        assert np.abs(decoded - values).max() <= UNIT_ERROR_BOUND


def test_normals_round_trip_within_the_bound():
    normal = np.random.default_rng(0).normal(size=(60, 80, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    assert np.abs(decode_normal16(encode_normal16(normal)) - normal).max() <= NORMAL_ERROR_BOUND


def test_compressed_image_cdr_round_trip_and_size(image):
    typestore = typestore_with_project_types()
    factory = RosbagsMessageFactory(typestore)
    header = header_msg(factory, 123, "camera_color_optical_frame")
    for msg, values in ((png_map_msg(factory, encode_unit16(image), "rgb16", header), image),
                        (png_map_msg(factory, encode_unit16(image[..., 0]), "mono16", header), image[..., 0])):
        raw = typestore.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage")
        back = typestore.deserialize_cdr(raw, "sensor_msgs/msg/CompressedImage")
        assert back.format.endswith("png compressed " + back.format.split(";")[0])
        assert np.abs(decode_unit16(back.data.tobytes()) - values).max() <= UNIT_ERROR_BOUND
        assert len(raw) < values.size * 4 / 2  # under half of the 32-bit float Image payload
    normal = png_map_msg(factory, encode_normal16(np.dstack([np.zeros_like(image[..., :2]),
                                                             np.ones_like(image[..., 0])])), "rgb16", header)
    assert normal.format == "rgb16; png compressed rgb16"


def test_encoding_on_threads_gives_the_same_bytes_in_order(image):
    pixels = [np.rint(image * 255).astype(np.uint8), np.rint(image[..., 1] * 65535).astype(np.uint16)] * 3
    assert png_bytes_many(pixels) == [png_bytes(p) for p in pixels]
