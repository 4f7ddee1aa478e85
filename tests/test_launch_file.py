"""launch/perception.launch.py and config/perception.rviz agree with the parameter schema and the topics.

Without ROS 2 the launch file is read as source (its arguments, the parameters it overrides, the
node name); with `launch` importable it is also loaded and its description built for real.
"""
from __future__ import annotations

import ast
import importlib.util
import typing
from pathlib import Path

import pytest
import yaml

from mvinverse_ros import topics
from mvinverse_ros.params import parameter_specs

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILE = REPO / "launch" / "perception.launch.py"
RVIZ_FILE = REPO / "config" / "perception.rviz"
EXPECTED_ARGUMENTS = {"params_file", "namespace", "use_sim_time", "image_topic", "camera_info_topic",
                      "depth_topic", "rviz"}


@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), str(LAUNCH_FILE))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _keyword(call: ast.Call, name: str):
    return next((ast.literal_eval(k.value) for k in call.keywords if k.arg == name
                 and isinstance(k.value, ast.Constant)), None)


def test_declares_the_documented_arguments(launch_tree):
    declared = [ast.literal_eval(c.args[0]) for c in _calls(launch_tree, "DeclareLaunchArgument")]
    assert sorted(declared) == sorted(EXPECTED_ARGUMENTS)
    for call in _calls(launch_tree, "DeclareLaunchArgument"):
        assert _keyword(call, "description"), f"{ast.literal_eval(call.args[0])} has no description"


def test_topic_arguments_override_string_list_parameters(launch_tree):
    assignment = next(n for n in launch_tree.body if isinstance(n, ast.Assign)
                      and getattr(n.targets[0], "id", "") == "TOPIC_ARGUMENTS")
    overrides = ast.literal_eval(assignment.value)
    specs = {s.name: s for s in parameter_specs()}
    assert set(overrides) == {"image_topic", "camera_info_topic", "depth_topic"}
    for parameter in overrides.values():
        assert typing.get_origin(specs[parameter].type) is list, parameter


def test_node_name_gives_the_shared_topic_namespace(launch_tree):
    nodes = [c for c in _calls(launch_tree, "Node") if _keyword(c, "executable") == "perception_node"]
    assert len(nodes) == 1
    assert "/" + _keyword(nodes[0], "name") == topics.NAMESPACE
    assert (REPO / "scripts" / "perception_node").is_file()


def test_default_params_file_is_the_package_config(launch_tree):
    source = LAUNCH_FILE.read_text()
    assert '"config", "perception.yaml"' in source
    assert (REPO / "config" / "perception.yaml").is_file()


def test_rviz_shows_the_images_and_the_cloud_in_the_fixed_frame():
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    shown = {d["Topic"]["Value"]: d["Class"] for d in manager["Displays"] if "Topic" in d}
    assert shown[topics.CLOUD] == "rviz_default_plugins/PointCloud2"
    images = {t for t, cls in shown.items() if cls == "rviz_default_plugins/Image"}
    assert images == {topics.ALBEDO, topics.ROUGHNESS, topics.METALLIC, topics.NORMAL_VISUAL, topics.SHADING_VISUAL}
    defaults = yaml.safe_load((REPO / "config" / "perception.yaml").read_text())["/**"]["ros__parameters"]
    assert manager["Global Options"]["Fixed Frame"] == defaults["tf"]["fixed_frame"]


def test_launch_description_builds_when_launch_is_installed():
    pytest.importorskip("launch")
    pytest.importorskip("launch_ros")
    spec = importlib.util.spec_from_file_location("perception_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {arg.name for arg in description.get_launch_arguments()}
    assert names == EXPECTED_ARGUMENTS
