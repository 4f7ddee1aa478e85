"""The rclpy node end to end on real 7-Scenes frames.

Every output topic, the cloud's frame and fields, and a flood of input that must not make the node fall behind.

Needs a ROS 2 installation (rclpy, message_filters, tf2_ros) with this package built by colcon (for
mvinverse_ros/msg/MaterialMaps); skips cleanly elsewhere.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("message_filters")
pytest.importorskip("tf2_ros")
pytest.importorskip("mvinverse_ros.msg", reason="mvinverse_ros interfaces not built (colcon build)")

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from geometry_msgs.msg import Point  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from mvinverse_ros import topics  # noqa: E402
from mvinverse_ros.bag.importer import ODOM_FRAME, OPTICAL_FRAME  # noqa: E402
from mvinverse_ros.conversions.images import float_image_to_array, image_to_rgb  # noqa: E402
from mvinverse_ros.conversions.pointcloud import read_points  # noqa: E402
from mvinverse_ros.node import PerceptionNode  # noqa: E402

from ros_player import OutputListener, SevenScenesPlayer, load_frames, wait_until  # noqa: E402

FRAMES = 12
QUEUE_SIZE = 1
# Small and fast on a CPU: a short window and a small network input; every frame is a keyframe.
OVERRIDES = {
    "model.long_side": 126,
    "window.size": 2,
    "window.min_translation": 0.0,
    "window.min_rotation_deg": 0.0,
    "window.min_interval": 0.0,
    "execution.queue_size": QUEUE_SIZE,
    "tf.lookup_timeout": 0.2,
    "execution.publish_materials": True,
}
BEST_EFFORT = rclpy.qos.QoSProfile(depth=10, reliability=rclpy.qos.ReliabilityPolicy.BEST_EFFORT)


@pytest.fixture(scope="module")
def graph(sevenscenes_dir: Path):
    """The configured, active node, a player of real frames and a listener, spun by one executor."""
    camera, frames = load_frames(sevenscenes_dir, FRAMES)
    rclpy.init()
    node = PerceptionNode(parameter_overrides=[Parameter(k, value=v) for k, v in OVERRIDES.items()])
    player = SevenScenesPlayer(camera, frames)
    listener = OutputListener()
    listener.compressed = {name: [] for name in topics.IMAGE_ENCODINGS}  # as a best-effort subscriber (RViz) gets them
    for name in topics.IMAGE_ENCODINGS:
        listener.create_subscription(CompressedImage, topics.compressed(name), listener.compressed[name].append,
                                     BEST_EFFORT)
    executor = MultiThreadedExecutor(num_threads=4)
    for n in (node, player, listener):
        executor.add_node(n)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    yield node, player, listener
    node.trigger_deactivate()
    executor.shutdown()
    for n in (node, player, listener):
        n.destroy_node()
    rclpy.shutdown()


def test_every_output_topic_from_real_frames(graph):
    node, player, listener = graph
    time.sleep(1.0)  # discovery
    sent = []
    for index in range(6):
        sent.append(player.play(index))
        time.sleep(0.5)
        if not listener.missing():
            break
    assert wait_until(lambda: not listener.missing(), 120.0), f"never received: {listener.missing()}"

    encodings = {name: listener.received[name][0][1].encoding for name in topics.IMAGE_ENCODINGS}
    assert encodings == topics.IMAGE_ENCODINGS
    for name in topics.IMAGE_ENCODINGS:
        image = listener.received[name][0][1]
        assert image.header.frame_id == OPTICAL_FRAME
        assert rclpy.time.Time.from_msg(image.header.stamp).nanoseconds in sent
        assert (image.width, image.height) == (640, 480)
    albedo = image_to_rgb(listener.received[topics.ALBEDO][0][1])
    normal = float_image_to_array(listener.received[topics.NORMAL][0][1])
    assert albedo.shape == (480, 640, 3)
    assert np.allclose(np.linalg.norm(normal, axis=2), 1.0, atol=1e-3)

    assert wait_until(lambda: all(listener.compressed.values()), 30.0), "a best-effort subscriber got no PNG map"
    for name in topics.IMAGE_ENCODINGS:
        png = listener.compressed[name][0]
        assert "png compressed" in png.format and bytes(png.data[1:4]) == b"PNG"
        assert rclpy.time.Time.from_msg(png.header.stamp).nanoseconds in sent

    materials = listener.received[topics.MATERIALS][0][1]
    assert materials.header.frame_id == OPTICAL_FRAME
    assert materials.camera_info.k[0] > 0
    assert len(materials.window_stamps) >= 1

    cloud = listener.received[topics.CLOUD][-1][1]
    assert cloud.header.frame_id == ODOM_FRAME
    names = [f.name for f in cloud.fields]
    assert names[:4] == ["x", "y", "z", "rgb"]
    assert {"normal_x", "normal_y", "normal_z", "roughness", "metallic", "shading", "view_count"} <= set(names)
    points = read_points(cloud)
    assert len(points) > 1000
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1)
    assert np.isfinite(xyz).all()
    assert node.figures.counters["no_transform"] == 0


def _call(node, client, request, timeout: float = 30.0):
    """A service call from the test thread (the graph's executor spins the node that serves it)."""
    assert client.wait_for_service(timeout_sec=timeout)
    future = client.call_async(request)
    assert wait_until(future.done, timeout)
    return future.result()


def test_map_services_answer_from_the_fused_map(graph, tmp_path):
    """~/query_materials at points of the published cloud; ~/save_map writes a PLY; ~/clear_map empties the map."""
    from std_srvs.srv import Trigger

    from mvinverse_ros.srv import QueryMaterials

    node, _, listener = graph
    assert wait_until(lambda: listener.received[topics.CLOUD], 120.0)
    cloud = node.pipeline.cloud()
    assert cloud is not None and len(cloud) > 100
    chosen = np.argsort(cloud.view_count)[-3:]  # the best-seen voxels
    request = QueryMaterials.Request()
    request.header.frame_id = ODOM_FRAME
    request.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in cloud.points[chosen]]
    request.points.append(Point(x=1000.0, y=0.0, z=0.0))  # far from every voxel
    request.radius = 0.05
    client = node.create_client(QueryMaterials, "~/query_materials")
    response = _call(node, client, request)
    assert response.success, response.message
    assert list(response.found) == [True, True, True, False]
    np.testing.assert_allclose(response.roughness[:3], cloud.roughness[chosen], atol=0.02)
    np.testing.assert_allclose(response.metallic[:3], cloud.metallic[chosen], atol=0.02)
    assert np.isinf(response.distance[3]) and response.view_count[3] == 0

    assert node.set_parameters([Parameter("fusion.save_map", value=str(tmp_path / "map.ply"))])[0].successful
    saved = _call(node, node.create_client(Trigger, "~/save_map"), Trigger.Request())
    assert saved.success and (tmp_path / "map.ply").stat().st_size > 0
    cleared = _call(node, node.create_client(Trigger, "~/clear_map"), Trigger.Request())
    assert cleared.success and len(node.pipeline.cloud()) == 0


def test_parameter_and_lifecycle_services_answer_other_nodes(graph):
    """What `ros2 param set` and `ros2 lifecycle get` call: the node's own services, served while it runs."""
    from lifecycle_msgs.srv import GetState
    from rcl_interfaces.srv import SetParameters

    _, _, listener = graph
    state = _call(listener, listener.create_client(GetState, "/mvinverse/get_state"), GetState.Request())
    assert state.current_state.label == "active"
    request = SetParameters.Request(parameters=[Parameter("window.size", value=8).to_parameter_msg()])
    result = _call(listener, listener.create_client(SetParameters, "/mvinverse/set_parameters"), request).results[0]
    assert not result.successful and result.reason.startswith("window.size is read on configure")


def test_out_of_range_parameters_are_refused_by_ros(graph):
    node, _, _ = graph
    refused = node.set_parameters([Parameter("window.size", value=99)])[0]
    assert not refused.successful
    assert node.get_parameter("window.size").value == OVERRIDES["window.size"]
    described = node.describe_parameter("window.size")
    assert (described.integer_range[0].from_value, described.integer_range[0].to_value) == (2, 16)


def test_configure_time_parameters_are_refused_while_active_with_the_reason(graph):
    node, _, _ = graph
    refused = node.set_parameters([Parameter("model.dtype", value="bf16")])[0]
    assert not refused.successful
    assert refused.reason.startswith("model.dtype is read on configure: deactivate, cleanup")
    assert node.get_parameter("model.dtype").value == "fp32" and node.params.model.dtype == "fp32"
    assert "read on configure" in node.describe_parameter("model.dtype").additional_constraints


def test_live_parameters_are_checked_then_applied_at_once(graph):
    node, _, _ = graph
    too_long = node.set_parameters([Parameter("window.stride", value=3)])[0]  # window.size is 2
    assert not too_long.successful and "expected 1..window.size (2)" in too_long.reason
    applied = node.set_parameters([Parameter("fusion.max_depth", value=3.0), Parameter("window.stride", value=2)])
    try:
        assert all(result.successful for result in applied)
        assert (node.params.fusion.max_depth, node.params.window.stride) == (3.0, 2)
        assert node.pipeline.params is node.params
        assert all(policy.params.stride == 2 for policy in node.pipeline._policies.values())
        assert "changes live" in node.describe_parameter("window.stride").additional_constraints
    finally:
        node.set_parameters([Parameter("fusion.max_depth", value=5.0), Parameter("window.stride", value=1)])


def test_diagnostics_report_rates_latency_and_drops(graph):
    node, _, listener = graph
    assert wait_until(lambda: listener.diagnostics, 5.0)
    status = next(s for s in listener.diagnostics[-1].status if "perception" in s.name)
    keys = {kv.key for kv in status.values}
    assert {"input rate (Hz)", "inference per window mean (ms)", "latency stamp->publish mean (ms)",
            "windows dropped (worker behind)", "tf failures"} <= keys


def test_a_flood_of_input_drops_stale_windows_instead_of_falling_behind(graph):
    node, player, listener = graph
    before = len(listener.received[topics.ALBEDO])
    sent = []
    deepest = 0
    for index in range(40):
        sent.append(player.play(index))
        time.sleep(0.02)
        deepest = max(deepest, node.worker.queued)
    assert wait_until(lambda: node.worker.queued == 0, 120.0)
    time.sleep(0.5)
    assert wait_until(lambda: not node.worker.busy, 120.0)
    published = [rclpy.time.Time.from_msg(m.header.stamp).nanoseconds
                 for _, m in listener.received[topics.ALBEDO][before:]]
    assert deepest <= QUEUE_SIZE
    assert node.worker.dropped > 0
    assert len(published) < len(sent)
    # the newest window wins: what comes out last is from the end of the flood, not its start
    assert max(published) >= sent[-(QUEUE_SIZE + 2)]


def test_a_backwards_stamp_forgets_windows_tf_and_map_then_carries_on(graph):
    node, player, listener = graph
    resets = node.figures.counters["time_resets"]
    an_hour_ago = player.get_clock().now().nanoseconds - 3600 * 1_000_000_000
    player.play(0, stamp_ns=an_hour_ago)  # what a looping bag replay looks like to the node
    assert wait_until(lambda: node.figures.counters["time_resets"] > resets, 30.0)
    assert node.pipeline.cloud() is None or len(node.pipeline.cloud()) == 0
    before = len(listener.received[topics.CLOUD])
    for index in range(1, 4):
        player.play(index)
        time.sleep(0.5)
    assert wait_until(lambda: len(listener.received[topics.CLOUD]) > before, 120.0)


def test_every_lifecycle_transition_succeeds_and_leaves_no_worker(graph):
    node = PerceptionNode("mvinverse_lifecycle", parameter_overrides=[Parameter("model.long_side", value=126)])
    try:
        for transition in ("configure", "activate", "deactivate", "activate", "deactivate", "cleanup",
                           "configure", "activate", "shutdown"):
            assert getattr(node, f"trigger_{transition}")() == TransitionCallbackReturn.SUCCESS, transition
            assert not node.worker.busy and node.worker.queued == 0
            assert node.worker.running == (transition == "activate"), transition
        assert node.pipeline is None
    finally:
        node.destroy_node()
