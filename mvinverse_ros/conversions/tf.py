"""tf2_msgs/TFMessage (and geometry_msgs/TransformStamped) into a TransformBuffer."""
from __future__ import annotations

from typing import Any

from mvinverse_ros.conversions.factory import stamp_to_ns
from mvinverse_ros.geometry.transforms import TransformBuffer


def add_transform_stamped(buffer: TransformBuffer, msg: Any, static: bool) -> bool:
    """Store one TransformStamped (parent = header.frame_id, child = child_frame_id)."""
    t, q = msg.transform.translation, msg.transform.rotation
    return buffer.set_transform_qt(msg.header.frame_id.lstrip("/"), msg.child_frame_id.lstrip("/"),
                                   stamp_to_ns(msg.header.stamp), (t.x, t.y, t.z), (q.x, q.y, q.z, q.w), static)


def add_tf_message(buffer: TransformBuffer, msg: Any, static: bool) -> int:
    """Store every transform of a /tf (static=False) or /tf_static (static=True) message; returns how many."""
    return sum(add_transform_stamped(buffer, t, static) for t in msg.transforms)
