"""The one parameter schema: config/perception.yaml, overrides, and their errors."""
from __future__ import annotations

import dataclasses
import typing

import pytest
import yaml

from mvinverse_ros.params import (
    ParameterError,
    PerceptionParams,
    default_params_file,
    load_params,
    parameter_specs,
    parse_overrides,
    read_params_file,
    to_flat,
)


def test_yaml_and_schema_name_the_same_parameters():
    in_yaml = set(read_params_file(default_params_file()))
    in_schema = {spec.name for spec in parameter_specs()}
    assert in_yaml == in_schema


def test_every_parameter_is_described_and_typed():
    for spec in parameter_specs():
        assert spec.description.strip(), spec.name
        assert spec.type in (str, int, float, bool) or typing.get_origin(spec.type) is list, spec.name


def test_defaults_load_typed():
    params = load_params()
    assert isinstance(params, PerceptionParams)
    assert isinstance(params.window.size, int) and 2 <= params.window.size <= 16
    assert isinstance(params.fusion.voxel_size, float)
    assert isinstance(params.fusion.enabled, bool)
    assert len(params.inputs.image_topics) == len(params.inputs.cameras)
    assert len(params.inputs.camera_info_topics) == len(params.inputs.cameras)
    assert len(params.inputs.depth_topics) == len(params.inputs.cameras)


def test_cli_overrides_are_parsed_with_the_schema_types():
    params = load_params(overrides=parse_overrides(
        ["window.size=8", "fusion.voxel_size=0.05", "fusion.enabled=false", "tf.fixed_frame=map",
         "inputs.depth_topics=['']"]))
    assert params.window.size == 8
    assert params.fusion.voxel_size == 0.05
    assert params.fusion.enabled is False
    assert params.tf.fixed_frame == "map"
    assert params.inputs.depth_topics == [""]


def test_params_file_overrides_defaults_whatever_the_node_key(tmp_path):
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump({"/robot/mvinverse": {"ros__parameters": {"window": {"size": 6}}}}))
    assert load_params(path).window.size == 6


def test_round_trip_through_flat_names():
    params = load_params()
    flat = to_flat(params)
    assert load_params(overrides=flat) == params


@pytest.mark.parametrize("item, message", [
    ("window.size=big", r"window.size='big' \(--set\) must be an integer"),
    ("fusion.enabled=2", r"fusion.enabled=2 \(--set\) must be true or false"),
    ("window.sise=3", "unknown parameters: window.sise"),
    ("novalue", "--set expects name=value"),
])
def test_bad_overrides_are_clear_errors(item, message):
    with pytest.raises(ParameterError, match=message):
        load_params(overrides=parse_overrides([item]))


def test_params_file_without_ros_parameters_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("just: a mapping\n")
    with pytest.raises(ParameterError, match="no ros__parameters"):
        read_params_file(path)


def test_sections_are_frozen():
    params = load_params()
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.window.size = 3


def test_each_override_can_name_its_own_source(tmp_path):
    """A CLI alias flag is named as the source of its value; other overrides fall back to --set."""
    overrides = {"window.size": "20", "fusion.voxel_size": "0.05"}
    with pytest.raises(ParameterError, match=r"^window.size=20 \(--window\) is not allowed: expected 2..16$"):
        load_params(overrides=overrides, override_source={"window.size": "--window"})
    with pytest.raises(ParameterError, match=r"^fusion.voxel_size=0.0001 \(--set\)"):
        load_params(overrides={"fusion.voxel_size": "1e-4"}, override_source={"window.size": "--window"})
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"window": {"size": 1}}}}))
    with pytest.raises(ParameterError, match=rf"window.size=1 \({path}\)"):
        load_params(path)
