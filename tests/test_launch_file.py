"""launch/perception.launch.py and config/perception.rviz agree with the parameter schema and the topics.

The launch file keeps its arguments and parameter overrides as plain data and imports `launch` only
where it builds the description, so it is imported and checked here without ROS 2; with `launch`
and `launch_ros` importable the description itself is built and compared with that data.
"""
from __future__ import annotations

import importlib.util
import typing
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from mvinverse_ros import topics
from mvinverse_ros.params import DEFAULTS_SOURCE, ParameterError, default_params_file, load_params, spec, to_flat

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILE = REPO / "launch" / "perception.launch.py"
RVIZ_FILE = REPO / "config" / "perception.rviz"


@pytest.fixture(scope="module")
def launch_file() -> ModuleType:
    """launch/perception.launch.py imported as `ros2 launch` imports it."""
    module_spec = importlib.util.spec_from_file_location("perception_launch", LAUNCH_FILE)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_every_argument_has_a_description_and_a_string_default(launch_file):
    for name, (default, description) in launch_file.ARGUMENTS.items():
        assert description.strip(), name
        assert isinstance(default, str) or (name == "params_file" and default is None), name


def test_topic_arguments_override_string_list_parameters(launch_file):
    assert set(launch_file.TOPIC_ARGUMENTS) <= set(launch_file.ARGUMENTS)
    for parameter in launch_file.TOPIC_ARGUMENTS.values():
        assert typing.get_origin(spec(parameter).type) is list, parameter


def test_topic_arguments_give_parameters_the_schema_accepts(launch_file):
    overrides = launch_file.topic_overrides({"image_topic": "/cam/color", "camera_info_topic": "/cam/info",
                                             "depth_topic": "none", "namespace": "robot"})
    params = load_params(overrides=overrides, override_source="launch arguments")
    assert params.inputs.image_topics == ["/cam/color"]
    assert params.inputs.camera_info_topics == ["/cam/info"]
    assert params.inputs.depth_topics == [""]  # 'none': this camera has no depth


def test_parameter_arguments_default_to_the_schema_defaults_with_its_choices(launch_file):
    defaults = to_flat(load_params())
    for name, parameter in launch_file.PARAMETER_ARGUMENTS.items():
        default, description = launch_file.ARGUMENTS[name]
        assert default == str(defaults[parameter]), name
        assert description.startswith(f"{parameter}: {spec(parameter).description}"), name
        choices = spec(parameter).choices
        assert launch_file.argument_choices(name) == (list(choices) if choices else None), name
    assert launch_file.argument_choices("transport") == ["raw", "compressed"]
    assert launch_file.argument_choices("image_topic") is None


def test_arguments_cover_what_changes_per_robot_or_bag(launch_file):
    per_robot = {"image_topic", "camera_info_topic", "depth_topic", "transport", "fixed_frame", "checkpoint", "device",
                 "dtype", "window_size", "use_sim_time", "namespace", "manual_lifecycle", "rviz"}
    assert per_robot <= set(launch_file.ARGUMENTS)


def test_a_realsense_replay_needs_only_arguments(launch_file):
    values = {"transport": "compressed", "depth_topic": "/camera/aligned_depth_to_color/image_raw",
              "fixed_frame": "map", "window_size": "6", "dtype": "fp32"}
    overrides = {**launch_file.topic_overrides(values), **launch_file.parameter_overrides(values)}
    assert overrides == {"inputs.depth_topics": ["/camera/aligned_depth_to_color/image_raw"],
                         "inputs.transport": "compressed", "tf.fixed_frame": "map", "window.size": 6}
    params = load_params(overrides=overrides, override_source="launch arguments")
    assert params.inputs.image_topics == ["/camera/color/image_raw"]  # subscribed as .../image_raw/compressed


def test_parameter_arguments_at_their_default_keep_the_params_file(launch_file):
    defaults = {name: launch_file.ARGUMENTS[name][0] for name in launch_file.PARAMETER_ARGUMENTS}
    assert launch_file.parameter_overrides(defaults) == {}


def test_a_bad_parameter_argument_is_refused_with_its_name(launch_file):
    with pytest.raises(ParameterError, match="launch argument window_size"):
        launch_file.parameter_overrides({"window_size": "40"})
    with pytest.raises(ParameterError, match="launch argument window_size"):
        launch_file.parameter_overrides({"window_size": "four"})


def test_empty_topic_arguments_keep_the_params_file(launch_file):
    assert launch_file.topic_overrides(dict.fromkeys(launch_file.TOPIC_ARGUMENTS, "")) == {}


def test_node_name_gives_the_shared_topic_namespace(launch_file):
    assert "/" + launch_file.NODE_NAME == topics.NAMESPACE
    assert (REPO / "scripts" / launch_file.EXECUTABLE).is_file()


def test_default_params_file_is_the_schema_defaults(launch_file):
    assert launch_file.DEFAULT_PARAMS_FILE == DEFAULTS_SOURCE
    # the installed copy (a ROS overlay) or the source tree's: the same file either way
    assert default_params_file().read_bytes() == (REPO / launch_file.DEFAULT_PARAMS_FILE).read_bytes()
    assert (REPO / launch_file.RVIZ_CONFIG) == RVIZ_FILE


def test_rviz_shows_the_images_and_the_cloud_in_the_fixed_frame():
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    shown = {d["Topic"]["Value"]: d["Class"] for d in manager["Displays"] if "Topic" in d}
    assert shown[topics.CLOUD] == "rviz_default_plugins/PointCloud2"
    images = {t for t, cls in shown.items() if cls == "rviz_default_plugins/Image"}
    assert images == {topics.ALBEDO, topics.ROUGHNESS, topics.METALLIC, topics.NORMAL_VISUAL, topics.SHADING_VISUAL}
    assert manager["Global Options"]["Fixed Frame"] == load_params().tf.fixed_frame


def test_launch_description_declares_the_arguments(launch_file):
    # The repository's launch/ folder is itself importable as a namespace package named `launch`:
    # ask for a submodule only the real package has.
    actions = pytest.importorskip("launch.actions")
    pytest.importorskip("launch_ros.actions")
    from launch import LaunchContext
    from launch.utilities import perform_substitutions

    description = launch_file.generate_launch_description()
    declared = [a for a in description.entities if isinstance(a, actions.DeclareLaunchArgument)]
    assert [a.name for a in declared] == list(launch_file.ARGUMENTS)
    context = LaunchContext()
    for argument in declared:
        default, text = launch_file.ARGUMENTS[argument.name]
        assert argument.description.startswith(text)  # launch appends "Valid choices are: ..."
        assert argument.choices == launch_file.argument_choices(argument.name)
        if default is not None:  # params_file's default needs the installed package share
            assert perform_substitutions(context, argument.default_value) == default
    assert isinstance(description.entities[-1], actions.OpaqueFunction)
