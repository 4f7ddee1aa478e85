"""One synchronized set of messages (colour, camera_info, optional depth) decoded into a Frame.

The one input-validation policy of the node and the offline bag path: whatever is broken is
dropped alone and named by a skip reason, so both count the same damage the same way.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from mvinverse_ros.conversions.camera_info import camera_model_from_msg
from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import stamp_to_ns
from mvinverse_ros.conversions.images import ImageDecoder, depth_from_msg, rgb_from_msg
from mvinverse_ros.geometry.transforms import TransformError
from mvinverse_ros.types import Frame

LOG = logging.getLogger(__name__)

# Why a synchronized set lost something on its way to a Frame (keys of the skip counters).
BAD_IMAGE = "bad_image"            # colour undecodable or unsupported: no frame at all
BAD_CAMERA_INFO = "bad_camera_info"  # frame kept without calibration (no cloud)
BAD_DEPTH = "bad_depth"            # frame kept without depth (no cloud)
NO_TRANSFORM = "no_transform"      # frame kept without pose (no cloud)
# Kept but worth knowing: a same-aspect size mismatch is taken as a scaled, registered stream and used.
RESIZED_CAMERA_INFO = "resized_camera_info"  # camera_info of another size than the image: intrinsics rescaled
RESIZED_DEPTH = "resized_depth"              # depth of another size than the image: pixel indices rescaled

PoseLookup = Callable[[str, int], np.ndarray]
"""(optical frame_id, stamp_ns) -> 4x4 camera-to-fixed pose; raises TransformError when unknown."""


def _same_aspect(a_hw: tuple[int, int], b_hw: tuple[int, int], tolerance: float = 0.01) -> bool:
    return abs(a_hw[1] / a_hw[0] - b_hw[1] / b_hw[0]) <= tolerance * (b_hw[1] / b_hw[0])


def frame_from_messages(image: Any, camera_info: Any | None, depth: Any | None, source: str,
                        lookup_pose: PoseLookup | None, decoder: ImageDecoder,
                        max_pixels: int | None = None) -> tuple[Frame | None, list[str]]:
    """Decode one synchronized set of messages (rosbags or rclpy, duck-typed) into a Frame.

    Images are decoded by `decoder` (rosbags-image offline, cv_bridge in the node) and turned into
    the network's RGB and metres by the one policy of conversions/images.py.

    Whatever is broken is dropped alone and named: a bad colour image (undecodable, empty, or
    over `max_pixels`, checked before decoding) gives no frame; a bad camera_info (uncalibrated
    or non-finite) or depth (undecodable, over `max_pixels`, or not the colour image's aspect
    ratio, i.e. not registered to it) or a missing transform gives a frame without it, so it
    still gets maps. A camera_info or depth of the image's aspect but another size is used
    (scaled) and named too (RESIZED_CAMERA_INFO, RESIZED_DEPTH), so a misconfigured driver shows
    in the counters instead of passing silently.

    Returns:
        (frame or None, reasons) with reasons from BAD_IMAGE, BAD_CAMERA_INFO, BAD_DEPTH, NO_TRANSFORM,
        RESIZED_CAMERA_INFO, RESIZED_DEPTH.
    """
    reasons: list[str] = []
    frame_id = image.header.frame_id
    stamp_ns = stamp_to_ns(image.header.stamp)
    try:
        rgb = rgb_from_msg(image, decoder, max_pixels)
    except ConversionError as err:
        LOG.warning("%s: dropped image at %d ns: %s", source, stamp_ns, err)
        return None, [BAD_IMAGE]
    hw = rgb.shape[:2]
    camera = None
    if camera_info is not None:
        try:
            camera = camera_model_from_msg(camera_info)
            if not _same_aspect((camera.height, camera.width), hw):
                raise ConversionError(f"camera_info is {camera.width}x{camera.height}, image {hw[1]}x{hw[0]}")
            if (camera.height, camera.width) != hw:
                LOG.info("%s: camera_info is %dx%d, image %dx%d: intrinsics rescaled", source, camera.width,
                         camera.height, hw[1], hw[0])
                reasons.append(RESIZED_CAMERA_INFO)
        except ConversionError as err:
            LOG.warning("%s: image at %d ns kept without calibration: %s", source, stamp_ns, err)
            reasons.append(BAD_CAMERA_INFO)
            camera = None
    depth_m = None
    if depth is not None:
        try:
            depth_m = depth_from_msg(depth, decoder, max_pixels)
            if not _same_aspect(depth_m.shape[:2], hw):
                raise ConversionError(f"depth is {depth_m.shape[1]}x{depth_m.shape[0]}, image {hw[1]}x{hw[0]}: "
                                      "not registered to the colour image")
            if depth_m.shape[:2] != hw:
                LOG.info("%s: depth is %dx%d, image %dx%d: taken as registered and scaled", source,
                         depth_m.shape[1], depth_m.shape[0], hw[1], hw[0])
                reasons.append(RESIZED_DEPTH)
        except ConversionError as err:
            LOG.warning("%s: image at %d ns kept without depth: %s", source, stamp_ns, err)
            reasons.append(BAD_DEPTH)
            depth_m = None
    pose = None
    if lookup_pose is not None:
        try:
            pose = lookup_pose(frame_id, stamp_ns)
        except TransformError as err:
            LOG.info("%s: no pose for %s at %d ns: %s", source, frame_id, stamp_ns, err)
            reasons.append(NO_TRANSFORM)
    return Frame(stamp_ns, frame_id, rgb, camera, depth_m, pose, source), reasons
