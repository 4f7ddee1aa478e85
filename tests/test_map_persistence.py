"""fusion.load_map: a pipeline's saved map is where the next pipeline starts, and where reset returns."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mvinverse_ros.params import load_params
from mvinverse_ros.pipeline import PerceptionPipeline, engine_from_params
from test_pipeline import FAST, load_frames  # tests/ is on sys.path (pytest rootdir-less prepend import)


@pytest.fixture(scope="module")
def engine():
    engine, _ = engine_from_params(load_params(None, FAST).model)
    return engine


def assert_same_cloud(a, b):
    assert len(a) == len(b)
    for field in dataclasses.fields(a):
        assert getattr(a, field.name).tobytes() == getattr(b, field.name).tobytes(), field.name


def test_saved_map_is_loaded_on_construction_and_after_reset(sevenscenes_dir, engine, tmp_path):
    first = PerceptionPipeline(load_params(None, FAST), engine)
    for frame in load_frames(sevenscenes_dir, 3):
        window = first.submit(frame)
        if window is not None:
            first.process(window)
    assert first.save_map(tmp_path / "map.ply")
    saved = first.cloud()
    assert len(saved) > 1000

    resumed = PerceptionPipeline(load_params(None, {**FAST, "fusion.load_map": str(tmp_path / "map.ply")}), engine)
    assert_same_cloud(resumed.cloud(), saved)
    resumed.save_map(tmp_path / "again.ply")
    assert (tmp_path / "again.ply").read_bytes() == (tmp_path / "map.ply").read_bytes()
    resumed.clear_map()
    assert len(resumed.cloud()) == 0
    resumed.reset()
    assert_same_cloud(resumed.cloud(), saved)
    np.testing.assert_array_equal(resumed.cloud().view_count, saved.view_count)


def test_a_map_of_another_voxel_size_is_refused(sevenscenes_dir, engine, tmp_path):
    pipeline = PerceptionPipeline(load_params(None, FAST), engine)
    pipeline.save_map(tmp_path / "empty.ply")
    other = {**FAST, "fusion.load_map": str(tmp_path / "empty.ply"), "fusion.voxel_size": "0.05"}
    with pytest.raises(ValueError, match="voxels of 0.02 m, this map 0.05 m"):
        PerceptionPipeline(load_params(None, other), engine)
    disabled = load_params(None, {**FAST, "fusion.enabled": "false", "fusion.load_map": str(tmp_path / "none.ply")})
    assert PerceptionPipeline(disabled, engine).save_map(tmp_path / "never.ply") is False
