"""Building ROS messages without depending on which library provides the classes.

Converters build messages through a `MessageFactory`, so the same code serves rosbags (offline
bags, tests; `bag.typestore`) and rclpy (the node; `ros.messages`). Reading needs no factory:
rosbags and rclpy messages have the same attribute names; only array fields differ in type
(numpy arrays vs array.array), which readers absorb with np.asarray / np.frombuffer.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from mvinverse_ros.types import NS_PER_SECOND

MATERIAL_MAPS_TYPE = "mvinverse_ros/msg/MaterialMaps"


class MessageFactory(Protocol):
    """How converters create messages.

    `new` takes the full type name ('sensor_msgs/msg/Image') and field values; nested messages
    are passed as objects this factory built. `array` turns a 1-D numpy array into what the
    library stores in a numeric array field (uint8[] payloads, float64[] / float64[9]
    calibration): rosbags keeps the numpy array, rclpy wants array.array of the same typecode.
    """

    def new(self, type_name: str, **fields: Any) -> Any: ...

    def array(self, values: np.ndarray) -> Any: ...


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) to integer nanoseconds."""
    return int(stamp.sec) * NS_PER_SECOND + int(stamp.nanosec)


def time_msg(factory: MessageFactory, stamp_ns: int) -> Any:
    """builtin_interfaces/Time from integer nanoseconds (negative stamps are rejected by ROS)."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_SECOND)
    return factory.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def header_msg(factory: MessageFactory, stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header for a stamp in nanoseconds and a frame id."""
    return factory.new("std_msgs/msg/Header", stamp=time_msg(factory, stamp_ns), frame_id=frame_id)
