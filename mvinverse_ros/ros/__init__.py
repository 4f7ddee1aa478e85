"""ROS 2 edge of the node: the rclpy message factory and the cv_bridge image decoder."""
