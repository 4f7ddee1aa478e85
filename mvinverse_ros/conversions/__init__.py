"""ROS message <-> numpy conversions, shared by the offline bag path (rosbags) and the node (rclpy).

Nothing here imports a ROS client library or rosbags: messages are built through a MessageFactory.
"""
from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import MATERIAL_MAPS_TYPE, MessageFactory, header_msg, stamp_to_ns, time_msg

__all__ = ["ConversionError", "MATERIAL_MAPS_TYPE", "MessageFactory", "header_msg", "stamp_to_ns", "time_msg"]
