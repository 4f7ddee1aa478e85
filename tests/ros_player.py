"""A small rclpy player of a real 7-Scenes sequence, laid out as a robot's RGB-D camera driver would.

Publishes, stamped with the player's clock at send time: rgb8 colour, 16UC1 depth and camera_info
on the topics of config/perception.yaml, `odom -> camera_link` on /tf and the static
`camera_link -> camera_color_optical_frame` on /tf_static (the same frames `bag import-rgbd`
writes). Used by the node and launch tests; also a command:

    python3 tests/ros_player.py --data ../shared/data/7scenes-redkitchen --rate 5 --loop
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from mvinverse_ros import topics
from mvinverse_ros.datasets import rgbd as datasets
from mvinverse_ros.bag.importer import (
    BODY_FRAME, CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC, ODOM_FRAME, OPTICAL_FRAME, T_LINK_OPTICAL, body_pose,
)
from mvinverse_ros.bag.tf import tf_message, transform_stamped_msg
from mvinverse_ros.conversions.camera_info import camera_info_msg
from mvinverse_ros.conversions.factory import header_msg
from mvinverse_ros.conversions.images import depth_image_msg, rgb_image_msg
from mvinverse_ros.ros.messages import RclpyMessageFactory
from mvinverse_ros.types import CameraModel


@dataclass(frozen=True)
class DecodedFrame:
    rgb: np.ndarray
    depth_m: np.ndarray | None
    T_world_optical: np.ndarray


def load_frames(folder: Path, count: int | None = None) -> tuple[CameraModel, list[DecodedFrame]]:
    """The first `count` frames of a 7-Scenes folder, decoded once (publishing then costs no disk I/O)."""
    sequence = datasets.load_7scenes(folder, fps=10.0)
    frames = []
    for sample, (_, pose) in list(zip(sequence.samples, sequence.poses))[:count]:
        rgb = cv2.cvtColor(cv2.imread(str(sample.color_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        depth = None
        if sample.depth_path is not None:
            raw = cv2.imread(str(sample.depth_path), cv2.IMREAD_UNCHANGED)
            depth = raw.astype(np.float32) / np.float32(sample.depth_per_metre)
            depth[raw == 0] = np.nan
        frames.append(DecodedFrame(rgb, depth, pose))
    return sequence.camera, frames


class SevenScenesPlayer(Node):
    """Publishes decoded frames with TF; `play(i)` sends frame i stamped now."""

    def __init__(self, camera: CameraModel, frames: list[DecodedFrame], reliability: str = "reliable",
                 with_depth: bool = True) -> None:
        super().__init__("seven_scenes_player")
        self.camera, self.frames, self.with_depth = camera, frames, with_depth
        self.factory = RclpyMessageFactory()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        msg = self.factory.message_class
        self.color_pub = self.create_publisher(msg("sensor_msgs/msg/Image"), COLOR_TOPIC, qos)
        self.depth_pub = self.create_publisher(msg("sensor_msgs/msg/Image"), DEPTH_TOPIC, qos)
        self.info_pub = self.create_publisher(msg("sensor_msgs/msg/CameraInfo"), CAMERA_INFO_TOPIC, qos)
        self.tf_pub = self.create_publisher(msg("tf2_msgs/msg/TFMessage"), "/tf", 100)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.tf_static_pub = self.create_publisher(msg("tf2_msgs/msg/TFMessage"), "/tf_static", latched)
        self.tf_static_pub.publish(tf_message(self.factory, [transform_stamped_msg(
            self.factory, self.get_clock().now().nanoseconds, BODY_FRAME, OPTICAL_FRAME, T_LINK_OPTICAL)]))
        self.sent = 0

    def play(self, index: int, stamp_ns: int | None = None) -> int:
        """Publish frame `index` (modulo the sequence) with its pose; returns the stamp used."""
        frame = self.frames[index % len(self.frames)]
        stamp_ns = self.get_clock().now().nanoseconds if stamp_ns is None else stamp_ns
        self.tf_pub.publish(tf_message(self.factory, [transform_stamped_msg(
            self.factory, stamp_ns, ODOM_FRAME, BODY_FRAME, body_pose(frame.T_world_optical))]))
        header = header_msg(self.factory, stamp_ns, OPTICAL_FRAME)
        self.info_pub.publish(camera_info_msg(self.factory, self.camera, header))
        if self.with_depth and frame.depth_m is not None:
            self.depth_pub.publish(depth_image_msg(self.factory, frame.depth_m, header))
        self.color_pub.publish(rgb_image_msg(self.factory, frame.rgb, header))
        self.sent += 1
        return stamp_ns


class OutputListener(Node):
    """Keeps every message of every output topic (and /diagnostics) with its arrival time."""

    def __init__(self) -> None:
        super().__init__("mvinverse_output_listener")
        factory = RclpyMessageFactory()
        self.received: dict[str, list] = {name: [] for name in topics.OUTPUT_TYPES}
        self.diagnostics: list = []
        self.lock = threading.Lock()
        for name, msg_type in topics.OUTPUT_TYPES.items():
            self.create_subscription(factory.message_class(msg_type), name,
                                     lambda msg, name=name: self._keep(name, msg), 10)
        self.create_subscription(factory.message_class("diagnostic_msgs/msg/DiagnosticArray"), "/diagnostics",
                                 self.diagnostics.append, 10)

    def _keep(self, name: str, msg) -> None:
        with self.lock:
            self.received[name].append((time.monotonic(), msg))

    def missing(self) -> list[str]:
        with self.lock:
            return [name for name, got in self.received.items() if not got]


def wait_until(condition, timeout: float) -> bool:
    """Poll `condition` every 50 ms for up to `timeout` seconds; its last answer."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def spin_for(node: Any, seconds: float) -> None:
    """Serve `node`'s callbacks for `seconds` of wall time."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=min(0.05, max(0.0, end - time.monotonic())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="7-Scenes folder (frame-*.color.jpg, ...)")
    parser.add_argument("--rate", type=float, default=5.0, help="frames per second")
    parser.add_argument("--count", type=int, default=None, help="frames to load (default all)")
    parser.add_argument("--loop", action="store_true", help="start over at the end")
    parser.add_argument("--reliability", choices=["reliable", "best_effort"], default="reliable")
    args = parser.parse_args(argv)
    camera, frames = load_frames(args.data, args.count)
    rclpy.init()
    player = SevenScenesPlayer(camera, frames, args.reliability)
    try:
        index = 0
        while rclpy.ok() and (args.loop or index < len(frames)):
            player.play(index)
            index += 1
            spin_for(player, 1.0 / args.rate)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        player.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    print(f"published {player.sent} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
