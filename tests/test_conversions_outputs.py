"""The one builder of a window's output messages (node and `bag process`), through real CDR round trips."""
from __future__ import annotations

import numpy as np
import pytest

from mvinverse_ros import topics
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions.factory import stamp_to_ns
from mvinverse_ros.conversions.images import float_image_to_array, image_to_rgb
from mvinverse_ros.conversions.outputs import cloud_output_msg, window_output_msgs
from mvinverse_ros.conversions.pointcloud import cloud_from_msg
from mvinverse_ros.geometry.fusion import VoxelMap, surface_points
from mvinverse_ros.types import CameraModel, Frame, MaterialMaps, Window, WindowResult
from mvinverse_ros.visualize import normal_to_rgb8

STORE = typestore_with_project_types("humble")
FACTORY = RosbagsMessageFactory(STORE)
IMAGE_TOPICS = [topics.ALBEDO, topics.ROUGHNESS, topics.METALLIC, topics.NORMAL, topics.NORMAL_VISUAL,
                topics.SHADING, topics.SHADING_VISUAL]
HEIGHT, WIDTH = 12, 16
CAMERA = CameraModel(WIDTH, HEIGHT, np.array([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]]))


def cdr_round_trip(msg):
    return STORE.deserialize_cdr(bytes(STORE.serialize_cdr(msg, msg.__msgtype__)), msg.__msgtype__)


def make_frame(index: int) -> Frame:
    pose = np.eye(4)
    pose[0, 3] = 0.1 * index
    return Frame(5_000_000_000 + index * 100_000_000, "kinect_optical", np.full((HEIGHT, WIDTH, 3), index, np.uint8),
                 camera=CAMERA, depth=np.full((HEIGHT, WIDTH), 1.5, np.float32), camera_to_fixed=pose)


def make_maps(seed: int) -> MaterialMaps:
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(HEIGHT, WIDTH, 3))
    return MaterialMaps(
        albedo=rng.uniform(size=(HEIGHT, WIDTH, 3)).astype(np.float32),
        roughness=rng.uniform(size=(HEIGHT, WIDTH)).astype(np.float32),
        metallic=rng.uniform(size=(HEIGHT, WIDTH)).astype(np.float32),
        normal=(normal / np.linalg.norm(normal, axis=2, keepdims=True)).astype(np.float32),
        shading=rng.uniform(size=(HEIGHT, WIDTH, 3)).astype(np.float32),
    )


@pytest.fixture(scope="module")
def result() -> WindowResult:
    """A window of three frames publishing two of them, newest first (publish order is the window's)."""
    frames = tuple(make_frame(k) for k in range(3))
    return WindowResult(Window(7, frames, publish=(2, 0)), (make_maps(2), make_maps(0)), inference_seconds=0.125)


@pytest.fixture(scope="module")
def cloud(result):
    fused = VoxelMap(voxel_size=0.05, extent=20.0, max_points=10_000)
    for frame, maps in result.published():
        fused.integrate(surface_points(frame, maps))
    return fused.cloud()


def test_each_published_frame_gives_its_images_then_its_materials_in_publish_order(result):
    outputs = window_output_msgs(FACTORY, result)
    assert [topic for topic, _ in outputs] == (IMAGE_TOPICS + [topics.MATERIALS]) * 2
    for (topic, message), frame_index in zip(outputs, [2] * 8 + [0] * 8):
        back = cdr_round_trip(message)  # every message serializes as its topic's type
        assert back.__msgtype__ == topics.OUTPUT_TYPES[topic]
        assert stamp_to_ns(back.header.stamp) == result.window.frames[frame_index].stamp_ns
        assert back.header.frame_id == "kinect_optical"
    by_topic = dict(outputs[:8])
    assert {t: by_topic[t].encoding for t in topics.IMAGE_ENCODINGS} == topics.IMAGE_ENCODINGS
    materials = by_topic[topics.MATERIALS]
    assert (materials.frame_index, materials.inference_time) == (2, pytest.approx(0.125))
    assert [stamp_to_ns(s) for s in materials.window_stamps] == [f.stamp_ns for f in result.window.frames]
    # The float topics are the MaterialMaps' own images; the visual ones render the same maps.
    assert by_topic[topics.NORMAL] is materials.normal
    np.testing.assert_array_equal(float_image_to_array(by_topic[topics.ROUGHNESS]), result.maps[0].roughness)
    np.testing.assert_array_equal(image_to_rgb(by_topic[topics.NORMAL_VISUAL]), normal_to_rgb8(result.maps[0].normal))


def test_offline_output_has_no_wall_clock_field(result):
    outputs = window_output_msgs(FACTORY, result, with_inference_time=False)
    assert [m.inference_time for t, m in outputs if t == topics.MATERIALS] == [0.0, 0.0]


def test_the_cloud_comes_last_in_the_fixed_frame_at_the_window_newest_stamp(result, cloud):
    assert len(cloud) > 0
    outputs = window_output_msgs(FACTORY, result, cloud, "odom")
    assert len(outputs) == 17
    topic, message = outputs[-1]
    back = cdr_round_trip(message)
    assert topic == topics.CLOUD and back.__msgtype__ == topics.CLOUD_TYPE
    assert back.header.frame_id == "odom"
    assert stamp_to_ns(back.header.stamp) == result.window.frames[-1].stamp_ns
    np.testing.assert_array_equal(cloud_from_msg(back).points, cloud.points)
    alone_topic, alone = cloud_output_msg(FACTORY, cloud, "odom", 123)
    assert alone_topic == topics.CLOUD and stamp_to_ns(alone.header.stamp) == 123
    assert bytes(alone.data) == bytes(message.data)


def test_an_empty_cloud_is_not_published(result):
    empty = VoxelMap(voxel_size=0.05, extent=20.0, max_points=10).cloud()
    assert len(empty) == 0
    assert [t for t, _ in window_output_msgs(FACTORY, result, empty, "odom")][-1] == topics.MATERIALS
