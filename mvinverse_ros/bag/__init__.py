"""Offline bag processing without ROS: read, pair, run the pipeline, write (rosbags library)."""
from mvinverse_ros.bag.errors import BagError

__all__ = ["BagError"]
