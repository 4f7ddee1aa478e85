"""ROS message <-> numpy conversions, shared by the offline bag path (rosbags) and the node (rclpy)."""
from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import (
    MATERIAL_MAPS_TYPE,
    MessageFactory,
    RosbagsMessageFactory,
    header_msg,
    stamp_to_ns,
    time_msg,
    typestore_with_project_types,
)

__all__ = [
    "ConversionError", "MATERIAL_MAPS_TYPE", "MessageFactory", "RosbagsMessageFactory", "header_msg",
    "stamp_to_ns", "time_msg", "typestore_with_project_types",
]
