"""Start the MVInverse perception node (and optionally RViz).

    ros2 launch mvinverse_ros perception.launch.py image_topic:=/camera/color/image_raw
        camera_info_topic:=/camera/color/camera_info depth_topic:=/camera/depth/image_raw rviz:=true

Every parameter default lives in config/perception.yaml (or the file given as params_file); the
topic arguments, when not empty, override the first camera of that file.

The arguments and what they override are plain data, and `launch` is imported only where the
description is built, so tests/test_launch_file.py checks them against the parameter schema
without ROS 2.
"""
PACKAGE = "mvinverse_ros"
EXECUTABLE = "perception_node"
NODE_NAME = "mvinverse"  # the node's topics are /<namespace>/mvinverse/...
DEFAULT_PARAMS_FILE = "config/perception.yaml"  # in the package's share directory
RVIZ_CONFIG = "config/perception.rviz"

# launch argument -> (default value, description); params_file's default (None) is DEFAULT_PARAMS_FILE
ARGUMENTS = {
    "params_file": (None, "node parameters (ros__parameters YAML)"),
    "namespace": ("", "namespace of the node and its topics"),
    "use_sim_time": ("false", "true when replaying a bag with `ros2 bag play --clock`"),
    "image_topic": ("", "colour image topic ('' = from params_file)"),
    "camera_info_topic": ("", "camera_info topic ('' = from params_file)"),
    "depth_topic": ("", "registered depth topic ('' = from params_file, 'none' = no depth)"),
    "rviz": ("false", "also start RViz with " + RVIZ_CONFIG),
}

# launch argument -> the node parameter (a one-camera list) it overrides when not empty
TOPIC_ARGUMENTS = {
    "image_topic": "inputs.image_topics",
    "camera_info_topic": "inputs.camera_info_topics",
    "depth_topic": "inputs.depth_topics",
}


def topic_overrides(values: dict[str, str]) -> dict[str, list[str]]:
    """Node parameters from the topic arguments' values: a one-camera list each, 'none' = no topic."""
    return {TOPIC_ARGUMENTS[name]: ["" if value == "none" else value]
            for name, value in values.items() if name in TOPIC_ARGUMENTS and value}


def is_true(value: str) -> bool:
    """A launch argument's boolean, spelt as ROS 2 launch spells them."""
    return value.lower() in ("true", "1", "yes")


def _nodes(context):
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    overrides = topic_overrides({name: LaunchConfiguration(name).perform(context) for name in TOPIC_ARGUMENTS})
    use_sim_time = is_true(LaunchConfiguration("use_sim_time").perform(context))
    perception = Node(
        package=PACKAGE, executable=EXECUTABLE, name=NODE_NAME,
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides, {"use_sim_time": use_sim_time}],
    )
    rviz = Node(
        package="rviz2", executable="rviz2", name="rviz2", output="log",
        arguments=["-d", PathJoinSubstitution([FindPackageShare(PACKAGE), RVIZ_CONFIG])],
        parameters=[{"use_sim_time": use_sim_time}], condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return [perception, rviz]


def generate_launch_description():
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import PathJoinSubstitution
    from launch_ros.substitutions import FindPackageShare

    params_file = PathJoinSubstitution([FindPackageShare(PACKAGE), DEFAULT_PARAMS_FILE])
    declared = [DeclareLaunchArgument(name, default_value=params_file if default is None else default,
                                      description=description)
                for name, (default, description) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
