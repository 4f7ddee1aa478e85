"""`mvinverse-ros bag import-rgbd`: an RGB-D dataset folder (7-Scenes, TUM RGB-D) as a rosbag2.

The bag looks like an RGB-D camera driver's recording: colour (rgb8, or the dataset's JPEG bytes
as CompressedImage), registered depth (16UC1 millimetres), camera_info, and tf.

Frames (REP 103 / REP 105): the datasets give the pose of the colour camera's OPTICAL frame
(x right, y down, z forward) in their world, T_world_optical. The bag publishes
`odom -> camera_link` on /tf (camera_link = body frame: x forward, y left, z up) and the fixed
`camera_link -> camera_color_optical_frame` rotation on /tf_static, with
T_odom_link = T_world_optical @ inv(T_link_optical), so odom -> camera_link -> optical
reproduces the dataset pose exactly (`odom` is the dataset's world frame).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mvinverse_ros import topics
from mvinverse_ros.datasets import rgbd as datasets
from mvinverse_ros.bag.errors import BagError
from mvinverse_ros.datasets.errors import DatasetError
from mvinverse_ros.bag.tf import tf_message, transform_stamped_msg
from mvinverse_ros.bag.writer import BagWriter
from mvinverse_ros.conversions.camera_info import camera_info_msg
from mvinverse_ros.conversions.factory import header_msg
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions.images import compressed_image_msg, depth_image_msg, rgb_image_msg
from mvinverse_ros.geometry.transforms import invert
from mvinverse_ros.types import NS_PER_SECOND

ODOM_FRAME = "odom"
BODY_FRAME = "camera_link"
OPTICAL_FRAME = "camera_color_optical_frame"
COLOR_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/depth/image_raw"
CAMERA_INFO_TOPIC = "/camera/color/camera_info"

# Columns are the optical axes in camera_link: x_opt = -y_link, y_opt = -z_link, z_opt = x_link.
LOG = logging.getLogger(__name__)

T_LINK_OPTICAL = np.array([[0.0, 0.0, 1.0, 0.0],
                           [-1.0, 0.0, 0.0, 0.0],
                           [0.0, -1.0, 0.0, 0.0],
                           [0.0, 0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class ImportSummary:
    format: str
    frames: int
    poses: int
    duration_s: float
    path: Path
    skipped: int = 0  # frames left out: colour or depth file unreadable


def body_pose(T_world_optical: np.ndarray) -> np.ndarray:
    """T_odom_link such that T_odom_link @ T_LINK_OPTICAL == T_world_optical."""
    return np.asarray(T_world_optical, dtype=np.float64) @ invert(T_LINK_OPTICAL)


def load_sequence(folder: Path, fmt: str, fps: float, intrinsics) -> tuple[str, datasets.RgbdSequence]:
    """('7scenes' | 'tum', sequence) for `fmt` 'auto', '7scenes' or 'tum'.

    Raises:
        BagError: unknown format, or a folder that does not hold one.
    """
    if not folder.is_dir():
        raise BagError(f"Could not import {folder}: not a directory")
    try:
        if fmt == "auto":
            fmt = datasets.detect_format(folder)
        if fmt == "7scenes":
            return fmt, datasets.load_7scenes(folder, fps, intrinsics)
        if fmt == "tum":
            return fmt, datasets.load_tum(folder, intrinsics)
    except DatasetError as err:
        raise BagError(str(err)) from err
    raise BagError(f"Could not import {folder}: unknown format {fmt!r} (auto, 7scenes, tum)")


class SampleUnreadable(BagError):
    """One frame's colour or depth file cannot be read (the frame is skipped, the import goes on)."""


def _read_image(path: Path, flags: int) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise SampleUnreadable(f"Could not read image {path}")
    return image


def import_rgbd(folder: str | Path, out: str | Path, fps: float = 10.0, compressed: bool = False,
                storage: str = "mcap", fmt: str = "auto", intrinsics=None, store: str = "humble") -> ImportSummary:
    """Write the dataset in `folder` as a new bag at `out`.

    Args:
        fps: frame rate stamped on 7-Scenes frames (TUM keeps its recorded stamps).
        compressed: write the dataset's encoded colour files as CompressedImage on
            <colour topic>/compressed instead of decoded rgb8 Images.
        intrinsics: (fx, fy, cx, cy) overriding the dataset's calibration.

    Raises:
        BagError: unreadable dataset files, or a bag that cannot be created.
    """
    folder, out = Path(folder), Path(out)
    fmt, sequence = load_sequence(folder, fmt, fps, intrinsics)
    typestore = typestore_with_project_types(store)
    factory = RosbagsMessageFactory(typestore)
    start_ns = sequence.samples[0].stamp_ns
    with BagWriter(out, typestore, storage) as bag:
        bag.write(topics.TF_STATIC, "tf2_msgs/msg/TFMessage", start_ns, tf_message(factory, [
            transform_stamped_msg(factory, start_ns, BODY_FRAME, OPTICAL_FRAME, T_LINK_OPTICAL)]), latched=True)
        samples = iter(sequence.samples)
        pending = next(samples, None)
        skipped = 0
        for stamp_ns, T_world_optical in sequence.poses:
            # Interleave in time order: every image is written right after the pose at or before it.
            while pending is not None and pending.stamp_ns < stamp_ns:
                skipped += not _write_sample(bag, factory, sequence, pending, compressed)
                pending = next(samples, None)
            bag.write(topics.TF, "tf2_msgs/msg/TFMessage", stamp_ns, tf_message(factory, [
                transform_stamped_msg(factory, stamp_ns, ODOM_FRAME, BODY_FRAME, body_pose(T_world_optical))]))
        while pending is not None:
            skipped += not _write_sample(bag, factory, sequence, pending, compressed)
            pending = next(samples, None)
    duration = (sequence.samples[-1].stamp_ns - start_ns) / NS_PER_SECOND
    return ImportSummary(fmt, len(sequence.samples) - skipped, len(sequence.poses), duration, out, skipped)


def _write_sample(bag: BagWriter, factory, sequence: datasets.RgbdSequence, sample: datasets.RgbdSample,
                  compressed: bool) -> bool:
    """Write one frame's messages; False (a warning, nothing written) when its colour or depth file is unreadable."""
    try:
        _write_sample_messages(bag, factory, sequence, sample, compressed)
    except SampleUnreadable as err:
        LOG.warning("skipped frame at %d ns: %s", sample.stamp_ns, err)
        return False
    return True


def _write_sample_messages(bag: BagWriter, factory, sequence: datasets.RgbdSequence, sample: datasets.RgbdSample,
                           compressed: bool) -> None:
    # Everything is read before anything is written, so an unreadable file leaves no half frame.
    header = header_msg(factory, sample.stamp_ns, OPTICAL_FRAME)
    depth_m = None
    if sample.depth_path is not None:
        raw = _read_image(sample.depth_path, cv2.IMREAD_UNCHANGED)
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise SampleUnreadable(f"Could not read depth {sample.depth_path}: expected a 16-bit single-channel PNG")
        depth_m = raw.astype(np.float32) / np.float32(sample.depth_per_metre)
        depth_m[raw == 0] = np.nan
    if compressed:
        suffix = sample.color_path.suffix.lower().lstrip(".")
        image_format = "jpeg" if suffix in ("jpg", "jpeg") else suffix
        try:
            encoded = sample.color_path.read_bytes()
        except OSError as err:
            raise SampleUnreadable(f"Could not read image {sample.color_path}: {err}") from err
        bag.write(topics.compressed(COLOR_TOPIC), "sensor_msgs/msg/CompressedImage", sample.stamp_ns,
                  compressed_image_msg(factory, encoded, image_format, header))
    else:
        rgb = cv2.cvtColor(_read_image(sample.color_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        bag.write(COLOR_TOPIC, "sensor_msgs/msg/Image", sample.stamp_ns, rgb_image_msg(factory, rgb, header))
    bag.write(CAMERA_INFO_TOPIC, "sensor_msgs/msg/CameraInfo", sample.stamp_ns,
              camera_info_msg(factory, sequence.camera, header))
    if depth_m is not None:
        bag.write(DEPTH_TOPIC, "sensor_msgs/msg/Image", sample.stamp_ns, depth_image_msg(factory, depth_m, header))
