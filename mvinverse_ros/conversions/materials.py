"""The mvinverse_ros/msg/MaterialMaps message of one published frame, and back."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mvinverse_ros.conversions.camera_info import camera_info_msg
from mvinverse_ros.conversions.factory import MATERIAL_MAPS_TYPE, MessageFactory, header_msg, time_msg
from mvinverse_ros.conversions.images import float_image_msg, float_image_to_array, image_to_rgb, rgb_image_msg
from mvinverse_ros.geometry.camera import camera_for_image
from mvinverse_ros.types import CameraModel, Frame, MaterialMaps


def _calibration(frame: Frame) -> CameraModel:
    """The frame's calibration at the maps' resolution, or an all-zero one when none was paired."""
    if frame.camera is None:
        return CameraModel(frame.width, frame.height, np.zeros((3, 3)), "", np.zeros(0))
    return camera_for_image(frame.camera, frame.height, frame.width)


def material_maps_msg(factory: MessageFactory, frame: Frame, maps: MaterialMaps, window_stamps_ns: Sequence[int],
                      frame_index: int, inference_seconds: float) -> Any:
    """MaterialMaps for `frame`: every image and camera_info carry the frame's stamp and frame_id.

    An unpaired camera gets a CameraInfo with K all zero (uncalibrated, as ROS marks it).
    """
    def header() -> Any:
        return header_msg(factory, frame.stamp_ns, frame.frame_id)

    return factory.new(
        MATERIAL_MAPS_TYPE,
        header=header(),
        albedo=rgb_image_msg(factory, maps.albedo, header()),
        roughness=float_image_msg(factory, maps.roughness, header()),
        metallic=float_image_msg(factory, maps.metallic, header()),
        normal=float_image_msg(factory, maps.normal, header()),
        shading=float_image_msg(factory, maps.shading, header()),
        camera_info=camera_info_msg(factory, _calibration(frame), header()),
        window_stamps=[time_msg(factory, s) for s in window_stamps_ns],
        frame_index=int(frame_index),
        inference_time=float(inference_seconds),
    )


def maps_from_msg(msg: Any) -> MaterialMaps:
    """The maps a MaterialMaps message carries (albedo as float in [0, 1], 8-bit quantised)."""
    return MaterialMaps(
        albedo=image_to_rgb(msg.albedo).astype(np.float32) / np.float32(255.0),
        roughness=float_image_to_array(msg.roughness),
        metallic=float_image_to_array(msg.metallic),
        normal=float_image_to_array(msg.normal),
        shading=float_image_to_array(msg.shading),
    )
