"""Start the MVInverse perception node (and optionally RViz).

    ros2 launch mvinverse_ros perception.launch.py image_topic:=/camera/color/image_raw
        camera_info_topic:=/camera/color/camera_info depth_topic:=/camera/depth/image_raw rviz:=true

A RealSense replay (compressed colour, aligned depth, a map frame) needs only arguments:

    ros2 launch mvinverse_ros perception.launch.py transport:=compressed
        depth_topic:=/camera/aligned_depth_to_color/image_raw fixed_frame:=map use_sim_time:=true

Every parameter default lives in config/perception.yaml (or the file given as params_file). The
topic arguments, when not empty, override the first camera of that file; the other parameter
arguments take their defaults and choices from the schema and perception.yaml, and override the
file only when set to another value than that default.

The arguments and what they override are plain data, and `launch` is imported only where the
description is built, so tests/test_launch_file.py checks them against the parameter schema
without ROS 2.
"""
from mvinverse_ros.params import coerce, default_params_file, read_params_file, spec

PACKAGE = "mvinverse_ros"
EXECUTABLE = "perception_node"
NODE_NAME = "mvinverse"  # the node's topics are /<namespace>/mvinverse/...
DEFAULT_PARAMS_FILE = "config/perception.yaml"  # in the package's share directory
RVIZ_CONFIG = "config/perception.rviz"
PACKAGED_DEFAULTS = read_params_file(default_params_file())  # the schema's defaults (config/perception.yaml)

# launch argument -> the node parameter it overrides when set to another value than the packaged default
PARAMETER_ARGUMENTS = {
    "transport": "inputs.transport",
    "reliability": "inputs.reliability",
    "fixed_frame": "tf.fixed_frame",
    "checkpoint": "model.checkpoint",
    "device": "model.device",
    "dtype": "model.dtype",
    "window_size": "window.size",
}


def _launch_text(value) -> str:
    """A parameter value as a launch argument spells it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


# launch argument -> (default value, description); params_file's default (None) is DEFAULT_PARAMS_FILE
ARGUMENTS = {
    "params_file": (None, "node parameters (ros__parameters YAML)"),
    "namespace": ("", "namespace of the node and its topics"),
    "use_sim_time": ("false", "true when replaying a bag with `ros2 bag play --clock`"),
    "manual_lifecycle": ("false", "true: the node stays unconfigured until a lifecycle manager (or "
                                  "`ros2 lifecycle set`) configures and activates it"),
    "image_topic": ("", "colour image topic, raw name ('' = from params_file)"),
    "camera_info_topic": ("", "camera_info topic ('' = from params_file)"),
    "depth_topic": ("", "registered depth topic ('' = from params_file, 'none' = no depth)"),
    "rviz": ("false", "also start RViz with " + RVIZ_CONFIG),
    **{name: (_launch_text(PACKAGED_DEFAULTS[parameter]),
              f"{parameter}: {spec(parameter).description} (params_file's value unless set to another value)")
       for name, parameter in PARAMETER_ARGUMENTS.items()},
}

# launch argument -> the node parameter (a one-camera list) it overrides when not empty
TOPIC_ARGUMENTS = {
    "image_topic": "inputs.image_topics",
    "camera_info_topic": "inputs.camera_info_topics",
    "depth_topic": "inputs.depth_topics",
}


def argument_choices(name: str) -> list[str] | None:
    """The values a launch argument accepts, where the schema names them (None: any)."""
    choices = spec(PARAMETER_ARGUMENTS[name]).choices if name in PARAMETER_ARGUMENTS else None
    return list(choices) if choices else None


def topic_overrides(values: dict[str, str]) -> dict[str, list[str]]:
    """Node parameters from the topic arguments' values: a one-camera list each, 'none' = no topic."""
    return {TOPIC_ARGUMENTS[name]: ["" if value == "none" else value]
            for name, value in values.items() if name in TOPIC_ARGUMENTS and value}


def parameter_overrides(values: dict[str, str]) -> dict:
    """Typed node parameters from the parameter arguments that differ from their defaults.

    Raises:
        ParameterError: a value the schema refuses, named with its launch argument.
    """
    overrides = {}
    for name, value in values.items():
        if name not in PARAMETER_ARGUMENTS or value == ARGUMENTS[name][0]:
            continue
        one = spec(PARAMETER_ARGUMENTS[name])
        typed = coerce(one, value, f"launch argument {name}")
        one.check(typed, f"launch argument {name}")
        overrides[one.name] = typed
    return overrides


def is_true(value: str) -> bool:
    """A launch argument's boolean, spelt as ROS 2 launch spells them."""
    return value.lower() in ("true", "1", "yes")


def _nodes(context):
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS if name != "params_file"}
    use_sim_time = is_true(values["use_sim_time"])
    perception = Node(
        package=PACKAGE, executable=EXECUTABLE, name=NODE_NAME,
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        arguments=["--manual-lifecycle"] if is_true(values["manual_lifecycle"]) else [],
        parameters=[LaunchConfiguration("params_file"), topic_overrides(values), parameter_overrides(values),
                    {"use_sim_time": use_sim_time}],
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
                                      description=description, choices=argument_choices(name))
                for name, (default, description) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes)])
