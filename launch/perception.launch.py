"""Start the MVInverse perception node (and optionally RViz).

    ros2 launch mvinverse_ros perception.launch.py image_topic:=/camera/color/image_raw
        camera_info_topic:=/camera/color/camera_info depth_topic:=/camera/depth/image_raw rviz:=true

Every parameter default lives in config/perception.yaml (or the file given as params_file); the
topic arguments, when not empty, override the first camera of that file.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "mvinverse_ros"

# launch argument -> the node parameter (a one-camera list) it overrides when not empty
TOPIC_ARGUMENTS = {
    "image_topic": "inputs.image_topics",
    "camera_info_topic": "inputs.camera_info_topics",
    "depth_topic": "inputs.depth_topics",
}


def _nodes(context):
    overrides = {}
    for argument, parameter in TOPIC_ARGUMENTS.items():
        value = LaunchConfiguration(argument).perform(context)
        if value:
            overrides[parameter] = ["" if value == "none" else value]
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context).lower() in ("true", "1", "yes")
    perception = Node(
        package=PACKAGE, executable="perception_node", name="mvinverse",
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides, {"use_sim_time": use_sim_time}],
    )
    rviz = Node(
        package="rviz2", executable="rviz2", name="rviz2", output="log",
        arguments=["-d", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "perception.rviz"])],
        parameters=[{"use_sim_time": use_sim_time}], condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return [perception, rviz]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "perception.yaml"]),
                              description="node parameters (ros__parameters YAML)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true when replaying a bag with `ros2 bag play --clock`"),
        DeclareLaunchArgument("image_topic", default_value="",
                              description="colour image topic ('' = from params_file)"),
        DeclareLaunchArgument("camera_info_topic", default_value="",
                              description="camera_info topic ('' = from params_file)"),
        DeclareLaunchArgument("depth_topic", default_value="",
                              description="registered depth topic ('' = from params_file, 'none' = no depth)"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start RViz with config/perception.rviz"),
        OpaqueFunction(function=_nodes),
    ])
