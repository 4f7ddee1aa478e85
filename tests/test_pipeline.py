"""PerceptionPipeline and frame_from_messages: the one code path the node and `bag process` share."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mvinverse_ros.conversions.camera_info import camera_info_msg
from mvinverse_ros.conversions.factory import header_msg
from mvinverse_ros.bag.images import RosbagsImageDecoder
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions.images import depth_image_msg, rgb_image_msg
from mvinverse_ros.pipeline import engine_from_params
from mvinverse_ros.geometry.transforms import ExtrapolationError
from mvinverse_ros.params import load_params
from mvinverse_ros.pipeline import PerceptionPipeline
from mvinverse_ros.conversions.frames import (
    BAD_CAMERA_INFO, BAD_DEPTH, BAD_IMAGE, NO_TRANSFORM, RESIZED_CAMERA_INFO, RESIZED_DEPTH, frame_from_messages,
)
from mvinverse_ros.types import CameraModel, Frame

SIZE = (160, 120)  # frames downscaled so the tiny network runs in a blink
FAST = {"model.preset": "tiny", "model.long_side": "112", "model.device": "cpu", "window.size": "2",
        "window.stride": "1", "window.min_translation": "0", "window.min_rotation_deg": "0",
        "window.min_interval": "0", "fusion.pixel_stride": "2", "execution.publish_cloud_every": "2"}
FACTORY = RosbagsMessageFactory(typestore_with_project_types())
DECODER = RosbagsImageDecoder(FACTORY)


def load_frames(folder: Path, count: int, source: str = "camera", with_depth: bool = True) -> list[Frame]:
    K = np.loadtxt(folder / "camera-intrinsics.txt")
    camera = CameraModel(640, 480, K)
    frames = []
    for i, color in enumerate(sorted(folder.glob("frame-*.color.jpg"))[:count]):
        stem = color.name.split(".")[0]
        rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(color)), cv2.COLOR_BGR2RGB), SIZE, interpolation=cv2.INTER_AREA)
        depth = None
        if with_depth:
            mm = cv2.imread(str(folder / f"{stem}.depth.png"), cv2.IMREAD_UNCHANGED)
            depth = np.where(mm > 0, mm / 1000.0, np.nan).astype(np.float32)
        frames.append(Frame(1_000_000_000 + i * 100_000_000, "optical", rgb, camera, depth,
                            np.loadtxt(folder / f"{stem}.pose.txt"), source))
    return frames


@pytest.fixture(scope="module")
def engine():
    engine, _ = engine_from_params(load_params(None, FAST).model)
    return engine


def test_cameras_window_independently_and_clouds_come_every_n_windows(sevenscenes_dir, engine):
    pipeline = PerceptionPipeline(load_params(None, FAST), engine)
    left = load_frames(sevenscenes_dir, 3, "left")
    right = load_frames(sevenscenes_dir, 3, "right", with_depth=False)
    outputs = []
    for l_frame, r_frame in zip(left, right):
        for frame in (l_frame, r_frame):
            window = pipeline.submit(frame)
            if window is not None:
                assert {f.source for f in window.frames} == {frame.source}
                outputs.append(pipeline.process(window))
    # stride 1: every frame runs, on a window of up to 2 frames of its own camera
    assert [len(o.result.window.frames) for o in outputs] == [1, 1, 2, 2, 2, 2]
    assert [o.fused for o in outputs] == [1, 0] * 3          # right has no depth
    assert [o.cloud_due for o in outputs] == [False, True] * 3
    assert dict(pipeline.counters) == {"frames": 6, "windows": 6, "published": 6, "fused": 3, "no_depth": 3}
    cloud = pipeline.cloud()
    assert len(cloud) > 1000 and cloud.view_count.max() == 3
    pipeline.reset()
    assert len(pipeline.cloud()) == 0 and len(pipeline.submit(left[2]).frames) == 1


def test_fusion_disabled_gives_no_cloud(sevenscenes_dir, engine):
    pipeline = PerceptionPipeline(load_params(None, {**FAST, "fusion.enabled": "false"}), engine)
    output = pipeline.process(pipeline.submit(load_frames(sevenscenes_dir, 1)[0]))
    assert output.fused == 0 and not output.cloud_due and pipeline.cloud() is None


def messages(rgb: np.ndarray, depth_m: np.ndarray | None, camera: CameraModel, stamp_ns: int = 5_000_000_000):
    header = header_msg(FACTORY, stamp_ns, "optical")
    return (rgb_image_msg(FACTORY, rgb, header), camera_info_msg(FACTORY, camera, header),
            None if depth_m is None else depth_image_msg(FACTORY, depth_m, header))


def test_frame_from_real_messages(sevenscenes_dir):
    frame = load_frames(sevenscenes_dir, 1)[0]
    image, info, depth = messages(frame.image, frame.depth, frame.camera)
    pose = np.eye(4)
    built, reasons = frame_from_messages(image, info, depth, "camera", lambda frame_id, stamp: pose, DECODER)
    # SIZE-downscaled colour, 640x480 calibration and depth: used, and named
    assert reasons == [RESIZED_CAMERA_INFO, RESIZED_DEPTH]
    np.testing.assert_array_equal(built.image, frame.image)
    np.testing.assert_allclose(built.depth, frame.depth, atol=5e-4, equal_nan=True)  # 16UC1 is millimetres
    np.testing.assert_allclose(built.camera.K, frame.camera.K)
    assert (built.stamp_ns, built.frame_id, built.source) == (5_000_000_000, "optical", "camera")
    assert built.camera_to_fixed is pose


def test_frame_from_messages_drops_only_what_is_broken(sevenscenes_dir):
    frame = load_frames(sevenscenes_dir, 1)[0]
    image, info, depth = messages(frame.image, frame.depth, frame.camera)

    def no_tf(frame_id, stamp):
        raise ExtrapolationError("no tf yet")

    built, reasons = frame_from_messages(image, info, depth, "camera", no_tf, DECODER)
    assert reasons == [RESIZED_CAMERA_INFO, RESIZED_DEPTH, NO_TRANSFORM]
    assert built.camera_to_fixed is None and built.depth is not None

    _, _, squashed = messages(frame.image, frame.depth[:, :100], frame.camera)  # not registered to the image
    built, reasons = frame_from_messages(image, info, squashed, "camera", None, DECODER)
    assert reasons == [RESIZED_CAMERA_INFO, BAD_DEPTH] and built.depth is None and built.camera is not None

    uncalibrated = CameraModel(640, 480, np.zeros((3, 3)))
    _, bad_info, _ = messages(frame.image, None, uncalibrated)
    built, reasons = frame_from_messages(image, bad_info, depth, "camera", None, DECODER)
    assert reasons == [BAD_CAMERA_INFO, RESIZED_DEPTH] and built.camera is None and built.depth is not None

    image.encoding = "8UC3"  # generic: no channel order, so not taken as colour
    built, reasons = frame_from_messages(image, info, depth, "camera", None, DECODER)
    assert built is None and reasons == [BAD_IMAGE]
