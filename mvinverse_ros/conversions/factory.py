"""Building ROS messages without depending on which library provides the classes.

Converters build messages through a `MessageFactory`, so the same code serves rosbags (offline
bags, tests) and rclpy (the node). Reading needs no factory: rosbags and rclpy messages have the
same attribute names; only array fields differ in type (numpy arrays vs array.array), which
readers absorb with np.asarray / np.frombuffer.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from mvinverse_ros.resources import share_file

MATERIAL_MAPS_TYPE = "mvinverse_ros/msg/MaterialMaps"

_STORES = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}


class MessageFactory(Protocol):
    """How converters create messages.

    `new` takes the full type name ('sensor_msgs/msg/Image') and field values; nested messages
    are passed as objects this factory built. `array` turns a 1-D numpy array into what the
    library stores in a numeric array field (uint8[] payloads, float64[] / float64[9]
    calibration): rosbags keeps the numpy array, rclpy wants array.array of the same typecode.
    """

    def new(self, type_name: str, **fields: Any) -> Any: ...

    def array(self, values: np.ndarray) -> Any: ...


class RosbagsMessageFactory:
    """MessageFactory over a rosbags typestore (see `typestore_with_project_types`)."""

    def __init__(self, typestore: Any):
        self.typestore = typestore

    def new(self, type_name: str, **fields: Any) -> Any:
        try:
            cls = self.typestore.types[type_name]
        except KeyError:
            raise KeyError(f"message type {type_name} is not registered in the typestore") from None
        return cls(**fields)

    def array(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values).reshape(-1)


def register_project_types(typestore: Any) -> Any:
    """Add msg/MaterialMaps.msg to a rosbags typestore (in place); returns the store."""
    path = share_file("msg/MaterialMaps.msg")
    typestore.register(get_types_from_msg(path.read_text(), MATERIAL_MAPS_TYPE))
    return typestore


def typestore_with_project_types(store_name: str = "humble") -> Any:
    """A rosbags typestore for a ROS 2 distribution ('humble' | 'jazzy') with this package's messages.

    Raises:
        ValueError: a distribution name this package does not target.
    """
    try:
        store = _STORES[store_name.lower().removeprefix("ros2_")]
    except KeyError:
        raise ValueError(f"unknown ROS 2 distribution {store_name!r}; expected one of {', '.join(_STORES)}") from None
    return register_project_types(get_typestore(store))


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) to integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def time_msg(factory: MessageFactory, stamp_ns: int) -> Any:
    """builtin_interfaces/Time from integer nanoseconds (negative stamps are rejected by ROS)."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return factory.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def header_msg(factory: MessageFactory, stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header for a stamp in nanoseconds and a frame id."""
    return factory.new("std_msgs/msg/Header", stamp=time_msg(factory, stamp_ns), frame_id=frame_id)
