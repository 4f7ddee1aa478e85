"""tf2_msgs/TFMessage <-> 4x4 transforms, and the offline TF buffer of a whole bag.

Offline, the whole recording is known, so the buffer is filled from every /tf and /tf_static
message before any image is looked up: a lookup at an image stamp can interpolate between the
poses around it, which a live node gets by waiting `tf.lookup_timeout`.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mvinverse_ros.bag.errors import BagError
from mvinverse_ros.bag.reader import BagReader
from mvinverse_ros.conversions.factory import MessageFactory, header_msg, stamp_to_ns
from mvinverse_ros.geometry.transforms import TransformBuffer, translation_quaternion_from_matrix
from mvinverse_ros.types import NS_PER_SECOND
from mvinverse_ros import topics

LOG = logging.getLogger(__name__)


def transform_stamped_msg(factory: MessageFactory, stamp_ns: int, parent: str, child: str,
                          T_parent_child: np.ndarray) -> Any:
    """geometry_msgs/TransformStamped carrying the pose of `child` in `parent`."""
    translation, quaternion = translation_quaternion_from_matrix(T_parent_child)
    x, y, z = (float(v) for v in translation)
    qx, qy, qz, qw = (float(v) for v in quaternion)
    transform = factory.new(
        "geometry_msgs/msg/Transform",
        translation=factory.new("geometry_msgs/msg/Vector3", x=x, y=y, z=z),
        rotation=factory.new("geometry_msgs/msg/Quaternion", x=qx, y=qy, z=qz, w=qw),
    )
    return factory.new("geometry_msgs/msg/TransformStamped", header=header_msg(factory, stamp_ns, parent),
                       child_frame_id=child, transform=transform)


def tf_message(factory: MessageFactory, transforms: list[Any]) -> Any:
    """tf2_msgs/TFMessage of TransformStamped messages."""
    return factory.new("tf2_msgs/msg/TFMessage", transforms=transforms)


def add_tf_message(buffer: TransformBuffer, message: Any, static: bool) -> int:
    """Store every transform of a TFMessage; returns how many were rejected (malformed)."""
    rejected = 0
    for stamped in message.transforms:
        t, q = stamped.transform.translation, stamped.transform.rotation
        try:
            buffer.set_transform_qt(stamped.header.frame_id, stamped.child_frame_id, stamp_to_ns(stamped.header.stamp),
                                    (t.x, t.y, t.z), (q.x, q.y, q.z, q.w), static=static)
        except ValueError as err:
            rejected += 1
            LOG.warning("ignored transform %s -> %s: %s", stamped.header.frame_id, stamped.child_frame_id, err)
    return rejected


def buffer_from_bag(bag: BagReader) -> tuple[TransformBuffer, int]:
    """(TransformBuffer holding every /tf and /tf_static transform of the bag, number rejected).

    Damaged storage ends the tf read with what came before it (a warning); the frame pass that
    follows meets the same damage and reports it.
    """
    span_s = bag.duration_ns / NS_PER_SECOND
    buffer = TransformBuffer(cache_seconds=span_s + 1.0)
    rejected = 0
    try:
        for message in bag.messages((topics.TF, topics.TF_STATIC)):
            rejected += add_tf_message(buffer, message.message, static=message.topic == topics.TF_STATIC)
    except BagError as err:
        LOG.warning("tf read up to the damage only: %s", err)
    return buffer, rejected
