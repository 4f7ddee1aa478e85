"""rosbags message classes for the offline path.

A typestore with this package's messages, and a MessageFactory over it (the node builds the same
messages with rclpy's classes instead).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from mvinverse_ros.conversions.factory import MATERIAL_MAPS_TYPE
from mvinverse_ros.resources import share_file

_STORES = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}


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
