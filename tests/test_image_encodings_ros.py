"""cv_bridge (the node's decoding) against rosbags-image (the offline one) on every input encoding, under ROS 2.

Real sensor_msgs messages are decoded by the node's CvBridgeImageDecoder; the same bytes, serialized by
rclpy and read back by rosbags, by the offline decoder; the package's policy must then give identical
arrays. Needs a sourced ROS 2 with cv_bridge; skips cleanly elsewhere.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("cv_bridge")

from image_encoding_cases import colour_cases, compressed_cases, depth_cases, kitchen_pixels, raw_fields  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from mvinverse_ros.bag.images import RosbagsImageDecoder  # noqa: E402
from mvinverse_ros.bag.typestore import typestore_with_project_types  # noqa: E402
from mvinverse_ros.conversions.images import depth_from_msg, rgb_from_msg  # noqa: E402
from mvinverse_ros.ros.images import CvBridgeImageDecoder  # noqa: E402
from mvinverse_ros.ros.messages import RclpyMessageFactory  # noqa: E402

STORE = typestore_with_project_types("humble")
NODE_DECODER = CvBridgeImageDecoder(RclpyMessageFactory())
BAG_DECODER = RosbagsImageDecoder()
# Little-endian only: cv_bridge 3.2.1 (humble) byte-swaps with ndarray.newbyteorder, which numpy 2 removed.
PADDINGS = [0, 5]


def offline_copy(msg):
    """`msg` as the offline path sees it: rclpy's CDR bytes read back by rosbags."""
    type_name = "sensor_msgs/msg/CompressedImage" if isinstance(msg, CompressedImage) else "sensor_msgs/msg/Image"
    return STORE.deserialize_cdr(serialize_message(msg), type_name)


def ros_image(pixels: np.ndarray, encoding: str, padding: int) -> Image:
    fields = raw_fields(pixels, encoding, padding)
    msg = Image(**{k: v for k, v in fields.items() if k != "data"})
    msg.data = fields["data"].tobytes()
    return msg


@pytest.fixture(scope="module")
def kitchen(sevenscenes_dir) -> dict:
    return kitchen_pixels(sevenscenes_dir)


@pytest.mark.parametrize("padding", PADDINGS)
def test_colour_encodings_decode_identically(kitchen, padding):
    for encoding, (pixels, expected) in colour_cases(kitchen["rgb"]).items():
        msg = ros_image(pixels, encoding, padding)
        node = rgb_from_msg(msg, NODE_DECODER)
        np.testing.assert_array_equal(node, rgb_from_msg(offline_copy(msg), BAG_DECODER), err_msg=encoding)
        assert node.shape == expected.shape, encoding


@pytest.mark.parametrize("padding", PADDINGS)
def test_depth_encodings_decode_identically(kitchen, padding):
    for encoding, (pixels, expected) in depth_cases(kitchen["millimetres"]).items():
        msg = ros_image(pixels, encoding, padding)
        node = depth_from_msg(msg, NODE_DECODER)
        np.testing.assert_array_equal(node, depth_from_msg(offline_copy(msg), BAG_DECODER), err_msg=encoding)
        np.testing.assert_allclose(node, expected, rtol=1e-6, err_msg=encoding)


def test_compressed_images_decode_identically(kitchen):
    for name, (image_format, data, expected) in compressed_cases(kitchen["rgb"], kitchen["jpeg"],
                                                                 kitchen["millimetres"]).items():
        msg = CompressedImage(format=image_format)
        msg.data = data
        node = rgb_from_msg(msg, NODE_DECODER)
        np.testing.assert_array_equal(node, rgb_from_msg(offline_copy(msg), BAG_DECODER), err_msg=name)
        np.testing.assert_array_equal(node, expected, err_msg=name)
