"""CameraInfo, PointCloud2 and MaterialMaps messages through real CDR round trips."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mvinverse_ros import topics
from mvinverse_ros.conversions import MATERIAL_MAPS_TYPE, ConversionError, header_msg, stamp_to_ns
from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions.camera_info import camera_info_msg, camera_model_from_msg
from mvinverse_ros.conversions.images import image_to_rgb
from mvinverse_ros.conversions.materials import maps_from_msg
from mvinverse_ros.conversions.outputs import window_output_msgs
from mvinverse_ros.conversions.pointcloud import (
    CLOUD_FIELDS,
    cloud_from_msg,
    cloud_msg,
    pack_rgb,
    read_points,
    unpack_rgb,
)
from mvinverse_ros.types import MaterialCloud
from mvinverse_ros.types import MAP_NAMES, CameraModel, Frame, MaterialMaps, Window, WindowResult

STORE = typestore_with_project_types("humble")
FACTORY = RosbagsMessageFactory(STORE)


def cdr_round_trip(msg, store=STORE):
    return store.deserialize_cdr(bytes(store.serialize_cdr(msg, msg.__msgtype__)), msg.__msgtype__)


def header(stamp_ns: int = 42_000_000_007, frame_id: str = "camera_color_optical_frame"):
    return header_msg(FACTORY, stamp_ns, frame_id)


@pytest.fixture(scope="module")
def kinect(sevenscenes_dir) -> CameraModel:
    return CameraModel(640, 480, np.loadtxt(sevenscenes_dir / "camera-intrinsics.txt"), "plumb_bob",
                       np.array([0.1, -0.2, 0.001, 0.002, 0.03]))


def test_camera_info_round_trip_keeps_every_model_field(kinect):
    msg = cdr_round_trip(camera_info_msg(FACTORY, kinect, header()))
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4)[:, :3], kinect.K)
    np.testing.assert_array_equal(np.asarray(msg.r).reshape(3, 3), np.eye(3))
    back = camera_model_from_msg(msg)
    assert (back.width, back.height, back.distortion_model) == (640, 480, "plumb_bob")
    np.testing.assert_array_equal(back.K, kinect.K)
    np.testing.assert_array_equal(back.D, kinect.D)


def test_camera_info_roi_and_binning_describe_the_delivered_image(kinect):
    msg = camera_info_msg(FACTORY, kinect, header())
    msg.roi = FACTORY.new("sensor_msgs/msg/RegionOfInterest", x_offset=100, y_offset=40, height=200, width=320,
                          do_rectify=False)
    cropped = camera_model_from_msg(cdr_round_trip(msg))
    assert (cropped.width, cropped.height) == (320, 200)
    np.testing.assert_allclose(cropped.K[:2, 2], [220, 200])
    msg = camera_info_msg(FACTORY, kinect, header())
    msg.binning_x = msg.binning_y = 2
    binned = camera_model_from_msg(msg)
    assert (binned.width, binned.height) == (320, 240)
    np.testing.assert_allclose(binned.K, kinect.resized(320, 240).K)


def test_uncalibrated_camera_info_is_an_error(kinect):
    msg = camera_info_msg(FACTORY, CameraModel(640, 480, np.zeros((3, 3))), header())
    with pytest.raises(ConversionError, match="uncalibrated.*fx=0.0"):
        camera_model_from_msg(msg)


def material_cloud(n: int, seed: int = 0) -> MaterialCloud:
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(n, 3))
    return MaterialCloud(
        points=rng.normal(size=(n, 3)).astype(np.float32),
        albedo=(rng.integers(0, 256, size=(n, 3)) / 255).astype(np.float32),  # 8-bit exact, as rgb stores it
        normal=(normal / np.linalg.norm(normal, axis=1, keepdims=True)).astype(np.float32),
        roughness=rng.uniform(size=n).astype(np.float32),
        metallic=rng.uniform(size=n).astype(np.float32),
        shading=np.repeat(rng.uniform(size=(n, 1)), 3, axis=1).astype(np.float32),  # grey survives exactly
        view_count=rng.integers(1, 1000, size=n).astype(np.uint32),
        albedo_std=np.repeat(rng.uniform(0, 0.2, size=(n, 1)), 3, axis=1).astype(np.float32),  # equal channels
        roughness_std=rng.uniform(0, 0.2, size=n).astype(np.float32),
        metallic_std=rng.uniform(0, 0.2, size=n).astype(np.float32),
        specular=rng.uniform(size=n).astype(np.float32),
    )


def test_point_cloud_round_trip_by_field_name():
    cloud = material_cloud(500)
    msg = cdr_round_trip(cloud_msg(FACTORY, cloud, header(frame_id="odom")))
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 500, 64, 64 * 500)
    assert msg.is_dense is False and msg.is_bigendian is False and msg.header.frame_id == "odom"
    back = cloud_from_msg(msg)
    for name in ("points", "albedo", "normal", "roughness", "metallic", "view_count", "roughness_std", "metallic_std",
                 "specular"):
        np.testing.assert_array_equal(getattr(back, name), getattr(cloud, name), err_msg=name)
    np.testing.assert_allclose(back.shading, cloud.shading, rtol=1e-6)
    np.testing.assert_allclose(back.albedo_std, cloud.albedo_std, rtol=1e-6)
    assert np.all(read_points(msg)["curvature"] == 0)


def test_point_cloud_fields_are_what_pcl_and_rviz_map_by_name():
    """pcl::PointXYZRGBNormal's fields and RViz's rgb channel, all FLOAT32 x1, non-overlapping."""
    msg = cloud_msg(FACTORY, material_cloud(3), header())
    fields = {f.name: (f.offset, f.datatype, f.count) for f in msg.fields}
    PointField = STORE.types["sensor_msgs/msg/PointField"]
    FLOAT32, UINT32 = PointField.FLOAT32, PointField.UINT32
    for name in ("x", "y", "z", "rgb", "normal_x", "normal_y", "normal_z", "curvature", "roughness", "metallic",
                 "shading", "roughness_std", "metallic_std", "albedo_std", "specular"):
        assert fields[name][1:] == (FLOAT32, 1), name
    assert fields["view_count"][1:] == (UINT32, 1)
    assert [fields[n][0] for n in ("x", "y", "z")] == [0, 4, 8]
    spans = sorted((offset, offset + 4) for offset, _, _ in fields.values())
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:])) and spans[-1][1] <= msg.point_step
    assert [name for name, _, _ in CLOUD_FIELDS] == [f.name for f in msg.fields]


def test_albedo_std_field_is_the_root_mean_square_of_the_channel_spreads():
    cloud = dataclasses.replace(material_cloud(2), albedo_std=np.array([[0.3, 0.4, 0.0], [0.1, 0.1, 0.1]], np.float32))
    field = read_points(cdr_round_trip(cloud_msg(FACTORY, cloud, header())))["albedo_std"]
    np.testing.assert_allclose(field, [np.sqrt(0.25 / 3), 0.1], rtol=1e-6)


def test_rgb_is_packed_as_0x00rrggbb_float_bits():
    packed = pack_rgb(np.array([[1.0, 128 / 255, 0.0]]))
    assert packed.dtype == np.float32 and packed.view(np.uint32)[0] == 0x00FF8000
    np.testing.assert_array_equal(unpack_rgb(packed), [[255, 128, 0]])


def test_empty_cloud():
    msg = cdr_round_trip(cloud_msg(FACTORY, material_cloud(0), header()))
    assert msg.width == 0 and len(cloud_from_msg(msg)) == 0


def test_reader_handles_foreign_layouts():
    """Another driver's cloud: big-endian, count > 1, row padding, height 2."""
    PointField = STORE.types["sensor_msgs/msg/PointField"]
    dtype = np.dtype({"names": ["x", "ring", "rgb", "w"], "formats": [">f4", ">u2", ">f4", (">f8", (2,))],
                      "offsets": [0, 4, 8, 16], "itemsize": 40})
    points = np.zeros(6, dtype=dtype)
    points["x"] = np.arange(6)
    points["ring"] = 7
    points["w"] = np.arange(12).reshape(6, 2)
    rows = points.view(np.uint8).reshape(2, 120)
    data = np.concatenate([rows, np.zeros((2, 8), np.uint8)], axis=1).reshape(-1)
    fields = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
              PointField(name="ring", offset=4, datatype=PointField.UINT16, count=1),
              PointField(name="rgb", offset=8, datatype=PointField.FLOAT32, count=1),
              PointField(name="w", offset=16, datatype=PointField.FLOAT64, count=2)]
    msg = cdr_round_trip(FACTORY.new("sensor_msgs/msg/PointCloud2", header=header(), height=2, width=3, fields=fields,
                                     is_bigendian=True, point_step=40, row_step=128, data=data, is_dense=True))
    read = read_points(msg)
    np.testing.assert_array_equal(read["x"], np.arange(6))
    np.testing.assert_array_equal(read["ring"], 7)
    np.testing.assert_array_equal(read["w"], np.arange(12).reshape(6, 2))
    with pytest.raises(ConversionError, match="lacks y, z, normal_x"):
        cloud_from_msg(msg)
    msg.data = msg.data[:-1]
    with pytest.raises(ConversionError, match="needs 256 bytes, got 255"):
        read_points(msg)


def maps_of(frame: Frame, seed: int) -> MaterialMaps:
    rng = np.random.default_rng(seed)
    h, w = frame.height, frame.width
    normal = rng.normal(size=(h, w, 3))
    return MaterialMaps(
        albedo=(rng.integers(0, 256, size=(h, w, 3)) / 255).astype(np.float32),
        roughness=rng.uniform(size=(h, w)).astype(np.float32),
        metallic=rng.uniform(size=(h, w)).astype(np.float32),
        normal=(normal / np.linalg.norm(normal, axis=2, keepdims=True)).astype(np.float32),
        shading=rng.uniform(size=(h, w, 3)).astype(np.float32),
    )


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_material_maps_message_round_trip(kinect, distro):
    store = typestore_with_project_types(distro)
    factory = RosbagsMessageFactory(store)
    frames = tuple(Frame(1_000_000_000 + k * 100_000_000, "kinect_optical", np.zeros((48, 64, 3), np.uint8),
                         camera=kinect if k else None) for k in range(3))
    maps = (maps_of(frames[2], 0), maps_of(frames[0], 1))
    result = WindowResult(Window(5, frames, publish=(2, 0)), maps, inference_seconds=0.25)
    messages = [message for topic, message in window_output_msgs(factory, result) if topic == topics.MATERIALS]
    assert [m.frame_index for m in messages] == [2, 0]
    newest = cdr_round_trip(messages[0], store)
    assert newest.__msgtype__ == MATERIAL_MAPS_TYPE
    assert stamp_to_ns(newest.header.stamp) == frames[2].stamp_ns and newest.header.frame_id == "kinect_optical"
    assert [stamp_to_ns(s) for s in newest.window_stamps] == [f.stamp_ns for f in frames]
    assert newest.inference_time == pytest.approx(0.25)
    for image in (newest.albedo, newest.roughness, newest.metallic, newest.normal, newest.shading, newest.camera_info):
        assert image.header.frame_id == "kinect_optical" and stamp_to_ns(image.header.stamp) == frames[2].stamp_ns
    assert [newest.albedo.encoding, newest.roughness.encoding, newest.normal.encoding, newest.shading.encoding] == [
        "rgb8", "32FC1", "32FC3", "32FC3"]
    back = maps_from_msg(newest)
    for name in MAP_NAMES:
        np.testing.assert_array_equal(getattr(back, name), getattr(maps[0], name), err_msg=name)
    np.testing.assert_array_equal(image_to_rgb(newest.albedo), np.round(maps[0].albedo * 255).astype(np.uint8))
    # The calibration describes the maps: camera_info given at 640x480 is rescaled to the 64x48 frame.
    calibration = camera_model_from_msg(newest.camera_info)
    np.testing.assert_allclose(calibration.K, kinect.resized(64, 48).K)
    unpaired = cdr_round_trip(messages[1], store)
    assert unpaired.camera_info.width == 64 and not np.any(unpaired.camera_info.k)


def test_unknown_distribution_is_rejected():
    with pytest.raises(ValueError, match="'noetic'.*humble, jazzy"):
        typestore_with_project_types("noetic")
