"""Pieces of the ROS 2 node: ROS-free helpers (queue, statistics) and the rclpy message factory."""
