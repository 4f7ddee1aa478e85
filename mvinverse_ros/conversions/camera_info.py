"""sensor_msgs/CameraInfo <-> CameraModel.

The model is the camera as the image is delivered: a region of interest crops it and binning
scales it (as image_geometry does), so unprojection needs nothing else from the message.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import MessageFactory
from mvinverse_ros.types import CameraModel


def camera_model_from_msg(msg: Any) -> CameraModel:
    """CameraModel (width, height, K, distortion model, D) of the image a CameraInfo describes.

    Raises:
        ConversionError: zero size, a K without positive focal lengths (an uncalibrated camera), or
            a K or D with NaN or infinite entries.
    """
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3).copy()
    D = np.asarray(msg.d, dtype=np.float64).copy()
    width, height = int(msg.width), int(msg.height)
    if not (np.isfinite(K).all() and np.isfinite(D).all()):
        raise ConversionError(f"CameraInfo {msg.header.frame_id!r} has non-finite calibration: K={K.reshape(-1)}, "
                              f"D={D}")
    if width <= 0 or height <= 0 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ConversionError(f"CameraInfo {msg.header.frame_id!r} is uncalibrated: {width}x{height}, "
                              f"fx={K[0, 0]}, fy={K[1, 1]}")
    roi = msg.roi
    if int(roi.width) > 0 and int(roi.height) > 0 and (int(roi.width), int(roi.height)) != (width, height):
        K[0, 2] -= int(roi.x_offset)
        K[1, 2] -= int(roi.y_offset)
        width, height = int(roi.width), int(roi.height)
    model = CameraModel(width, height, K, str(msg.distortion_model), D)
    binning_x, binning_y = max(int(msg.binning_x), 1), max(int(msg.binning_y), 1)
    if binning_x > 1 or binning_y > 1:
        model = model.resized(width // binning_x, height // binning_y)
    return model


def camera_info_msg(factory: MessageFactory, camera: CameraModel, header: Any) -> Any:
    """CameraInfo for `camera` (R = identity, P = [K | 0], no binning, full-image ROI)."""
    K = np.asarray(camera.K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = factory.new("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0,
                      do_rectify=False)
    return factory.new(
        "sensor_msgs/msg/CameraInfo", header=header, height=int(camera.height), width=int(camera.width),
        distortion_model=camera.distortion_model,
        d=factory.array(np.asarray(camera.D, dtype=np.float64)),
        k=factory.array(K.reshape(-1)), r=factory.array(np.eye(3).reshape(-1)), p=factory.array(P.reshape(-1)),
        binning_x=0, binning_y=0, roi=roi,
    )
