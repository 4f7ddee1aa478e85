"""Which `ros2 param set` a running node takes (runtime.parameters) and that the pipeline uses them at once.

The node's on-set-parameters callback answers with decide_change; the rclpy wiring is tested in tests/test_node.py.
"""
from __future__ import annotations

import pytest

from mvinverse_ros.params import load_params, parameter_specs, to_flat
from mvinverse_ros.pipeline import PerceptionPipeline, engine_from_params
from mvinverse_ros.runtime.parameters import LIVE_PARAMETERS, decide_change

from test_pipeline import FAST, load_frames

CURRENT = to_flat(load_params())


def test_live_parameters_are_schema_parameters():
    assert LIVE_PARAMETERS <= {one.name for one in parameter_specs()}


def test_a_configure_time_parameter_is_refused_while_active_with_the_way_to_change_it():
    change = decide_change(CURRENT, {"window.size": 8}, active=True)
    assert not change.accepted and change.params is None
    assert change.refusal.startswith("window.size is read on configure: deactivate, cleanup")
    mixed = decide_change(CURRENT, {"window.stride": 2, "model.dtype": "bf16", "inputs.transport": "compressed"},
                          active=True)
    assert mixed.refusal.startswith("inputs.transport, model.dtype are read on configure")


def test_live_parameters_are_accepted_while_active_as_complete_parameters():
    change = decide_change(CURRENT, {"window.stride": 2, "fusion.max_depth": 3.5, "tf.lookup_timeout": 0.2},
                           active=True)
    assert change.accepted and change.refusal == ""
    assert (change.params.window.stride, change.params.fusion.max_depth, change.params.tf.lookup_timeout) == \
        (2, 3.5, 0.2)
    assert change.params.window.size == load_params().window.size  # the rest as it was


def test_live_values_are_checked_by_the_whole_schema():
    too_long = decide_change(CURRENT, {"window.stride": CURRENT["window.size"] + 1}, active=True)
    assert "window.stride=5 (ros2 param set) is not allowed: expected 1..window.size (4)" in too_long.refusal
    bad_choice = decide_change(CURRENT, {"window.publish": "oldest"}, active=True)
    assert "expected one of newest, all" in bad_choice.refusal


def test_inactive_nodes_take_any_valid_value_one_at_a_time():
    # a second camera is named before its topics: only configure checks them together
    assert decide_change(CURRENT, {"inputs.cameras": ["left", "right"]}, active=False).accepted
    assert decide_change(CURRENT, {"window.size": 8}, active=False).params is None
    assert "expected one of fp32, bf16, fp16" in decide_change(CURRENT, {"model.dtype": "int8"}, active=False).refusal


def test_parameters_outside_the_schema_pass():
    assert decide_change(CURRENT, {"use_sim_time": True, "qos_overrides./a.subscription.depth": 3},
                         active=True).accepted


@pytest.fixture(scope="module")
def engine():
    engine, _ = engine_from_params(load_params(None, FAST).model)
    return engine


def test_the_pipeline_uses_accepted_live_parameters_from_the_next_frame(sevenscenes_dir, engine):
    params = load_params(None, FAST)
    pipeline = PerceptionPipeline(params, engine)
    frames = load_frames(sevenscenes_dir, 5)
    assert pipeline.submit(frames[0]) is not None  # stride 1: every keyframe runs
    change = decide_change(to_flat(params), {"window.stride": 2, "fusion.pixel_stride": 4}, active=True)
    pipeline.update_params(change.params)
    assert [pipeline.submit(frame) is not None for frame in frames[1:5]] == [False, True, False, True]
    assert pipeline.params.fusion.pixel_stride == 4  # what the next window is fused with
