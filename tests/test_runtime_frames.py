"""Size mismatches between colour, camera_info and depth are used but counted (conversions.frames).

A 320x240 image with 640x480 camera_info, or 320x240 depth with a 640x480 image, is the same view at
another resolution; the frame keeps both (scaled) and names the mismatch, as the node and the bag path count it.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mvinverse_ros.bag.images import RosbagsImageDecoder
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions.camera_info import camera_info_msg
from mvinverse_ros.conversions.factory import header_msg
from mvinverse_ros.conversions.frames import (
    BAD_CAMERA_INFO, BAD_DEPTH, RESIZED_CAMERA_INFO, RESIZED_DEPTH, frame_from_messages,
)
from mvinverse_ros.conversions.images import depth_image_msg, rgb_image_msg
from mvinverse_ros.geometry.camera import camera_for_image
from mvinverse_ros.types import CameraModel

FACTORY = RosbagsMessageFactory(typestore_with_project_types())
DECODER = RosbagsImageDecoder(FACTORY)
CAMERA = CameraModel(640, 480, np.array([[585.0, 0, 320], [0, 585.0, 240], [0, 0, 1]]))


@pytest.fixture(scope="module")
def rgb(sevenscenes_dir) -> np.ndarray:
    """A real 640x480 7-Scenes colour frame."""
    return cv2.cvtColor(cv2.imread(str(sorted(sevenscenes_dir.glob("*.color.jpg"))[0])), cv2.COLOR_BGR2RGB)


def _messages(rgb: np.ndarray, camera: CameraModel, depth_hw: tuple[int, int]):
    header = header_msg(FACTORY, 10**9, "optical")
    depth = np.full(depth_hw, 1.5, np.float32)
    return rgb_image_msg(FACTORY, rgb, header), camera_info_msg(FACTORY, camera, header), \
        depth_image_msg(FACTORY, depth, header)


def test_matching_sizes_name_nothing(rgb):
    frame, reasons = frame_from_messages(*_messages(rgb, CAMERA, (480, 640)), "camera", None, DECODER)
    assert reasons == [] and frame.camera is not None and frame.depth is not None


def test_a_half_size_image_with_full_size_camera_info_is_used_and_counted(rgb):
    small = cv2.resize(rgb, (320, 240), interpolation=cv2.INTER_AREA)
    frame, reasons = frame_from_messages(*_messages(small, CAMERA, (240, 320)), "camera", None, DECODER)
    assert reasons == [RESIZED_CAMERA_INFO]
    assert (frame.camera.width, frame.camera.height) == (640, 480)
    scaled = camera_for_image(frame.camera, 240, 320)  # what fusion unprojects the 320x240 depth with
    np.testing.assert_allclose(np.diag(scaled.K)[:2], [292.5, 292.5])
    np.testing.assert_allclose(scaled.K[:2, 2], [159.75, 119.75])  # pixel centres: (c + 0.5) / 2 - 0.5


def test_half_size_depth_with_a_full_size_image_is_used_and_counted(rgb):
    frame, reasons = frame_from_messages(*_messages(rgb, CAMERA, (240, 320)), "camera", None, DECODER)
    assert reasons == [RESIZED_DEPTH]
    assert frame.depth.shape == (240, 320)


def test_another_aspect_is_still_refused_not_resized(rgb):
    frame, reasons = frame_from_messages(*_messages(rgb, CameraModel(640, 640, CAMERA.K), (480, 480)), "camera",
                                         None, DECODER)
    assert reasons == [BAD_CAMERA_INFO, BAD_DEPTH]
    assert frame.camera is None and frame.depth is None
