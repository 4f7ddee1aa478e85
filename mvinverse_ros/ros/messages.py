"""The MessageFactory of the rclpy node: the package's converters build rclpy messages through it.

Numeric array fields take `array.array` built straight from the numpy buffer: rclpy stores such a
value as is (one memcpy), where a list or numpy array would be checked element by element.
"""
from __future__ import annotations

import array
from typing import Any

import numpy as np
from rosidl_runtime_py.utilities import get_message

# numpy dtype kind+size -> array.array typecode of the same width (rclpy's own mapping).
_TYPECODES = {
    ("u", 1): "B", ("i", 1): "b", ("u", 2): "H", ("i", 2): "h", ("u", 4): "I", ("i", 4): "i",
    ("u", 8): "Q", ("i", 8): "q", ("f", 4): "f", ("f", 8): "d",
}


class RclpyMessageFactory:
    """MessageFactory creating rclpy message instances by full type name ('sensor_msgs/msg/Image')."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}

    def message_class(self, type_name: str) -> type:
        """The generated Python class of `type_name` (imported once, then cached).

        Raises:
            KeyError: a type no installed interface package provides.
        """
        cls = self._classes.get(type_name)
        if cls is None:
            try:
                cls = get_message(type_name)
            except (AttributeError, ModuleNotFoundError, ValueError) as err:
                raise KeyError(f"message type {type_name} is not installed: {err}") from None
            self._classes[type_name] = cls
        return cls

    def new(self, type_name: str, **fields: Any) -> Any:
        return self.message_class(type_name)(**fields)

    def array(self, values: np.ndarray) -> array.array | list[bool]:
        values = np.ascontiguousarray(values).reshape(-1)
        if values.dtype == np.bool_:  # bool[]: array.array has no bool type; rclpy takes a list of bools
            return values.tolist()
        try:
            typecode = _TYPECODES[(values.dtype.kind, values.dtype.itemsize)]
        except KeyError:
            raise TypeError(f"no ROS array type holds numpy {values.dtype}") from None
        return array.array(typecode, values.astype(values.dtype.newbyteorder("="), copy=False).tobytes())
