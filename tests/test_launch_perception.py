"""launch/perception.launch.py under launch_testing: the launched node serves real 7-Scenes frames.

Run by `colcon test` (add_launch_test in CMakeLists.txt) or `launch_test tests/test_launch_perception.py`
in a sourced workspace; skips cleanly where ROS 2 is not installed, and (the whole launch, node included)
where the shared 7-Scenes frames are not found ($MVINVERSE_SHARED, default ../shared beside the source).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import unittest
from pathlib import Path

import pytest

launch_testing = pytest.importorskip("launch_testing")
rclpy = pytest.importorskip("rclpy")
pytest.importorskip("mvinverse_ros.msg", reason="mvinverse_ros interfaces not built (colcon build)")

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import yaml  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from mvinverse_ros import topics  # noqa: E402
from mvinverse_ros.bag.importer import ODOM_FRAME  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # launch_test, unlike pytest, does not add tests/
import ros_player  # noqa: E402

SHARED = Path(os.environ.get("MVINVERSE_SHARED", Path(__file__).resolve().parent.parent.parent / "shared"))
SEVEN_SCENES = SHARED / "data" / "7scenes-redkitchen"
# A params file holding only what differs from config/perception.yaml: small and fast on a CPU.
TEST_PARAMS = {"/**": {"ros__parameters": {
    "model": {"long_side": 126},
    "window": {"size": 2, "min_translation": 0.0, "min_rotation_deg": 0.0, "min_interval": 0.0},
    "tf": {"lookup_timeout": 0.2},
    "execution": {"publish_materials": True},  # off by default; here every output is checked
}}}


@pytest.mark.launch_test
@unittest.skipUnless(SEVEN_SCENES.is_dir(), f"no 7-Scenes frames at {SEVEN_SCENES} (set MVINVERSE_SHARED)")
def generate_test_description():
    params = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    yaml.safe_dump(TEST_PARAMS, params)
    params.close()
    # The launch file overrides params_file's camera with these, exactly as a user would.
    launch_file = Path(get_package_share_directory("mvinverse_ros")) / "launch" / "perception.launch.py"
    perception = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(launch_file)),
        launch_arguments={"params_file": params.name, "image_topic": ros_player.COLOR_TOPIC,
                          "camera_info_topic": ros_player.CAMERA_INFO_TOPIC,
                          "depth_topic": ros_player.DEPTH_TOPIC}.items())
    return launch.LaunchDescription([perception, launch_testing.actions.ReadyToTest()])


class TestPerceptionLaunch(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        camera, frames = ros_player.load_frames(SEVEN_SCENES, 8)
        cls.player = ros_player.SevenScenesPlayer(camera, frames)
        cls.listener = ros_player.OutputListener()
        cls.executor = SingleThreadedExecutor()
        cls.executor.add_node(cls.player)
        cls.executor.add_node(cls.listener)

    @classmethod
    def tearDownClass(cls):
        cls.executor.shutdown()
        cls.player.destroy_node()
        cls.listener.destroy_node()
        rclpy.shutdown()

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def test_launched_node_publishes_every_output(self):
        index = 0
        deadline = time.monotonic() + 300.0  # model loading (torch import) comes first
        while self.listener.missing() and time.monotonic() < deadline:
            self.player.play(index)
            index += 1
            self.spin(0.5)
        self.assertEqual(self.listener.missing(), [])
        cloud = self.listener.received[topics.CLOUD][-1][1]
        self.assertEqual(cloud.header.frame_id, ODOM_FRAME)
        self.assertGreater(cloud.width, 0)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_node_exits_cleanly(self, proc_info):
        # launch stops the node with SIGINT; main() catches it (KeyboardInterrupt or rclpy's
        # ExternalShutdownException), destroys the node and returns 0. -2 would be an unhandled SIGINT,
        # -15 a node still running after launch's SIGTERM timeout: both are bugs.
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[launch_testing.asserts.EXIT_OK])
