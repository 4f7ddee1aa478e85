"""Consistency fine-tuning on a rosbag: frames from the offline bag reader, geometric correspondences.

A few shared 7-Scenes frames go into a real MCAP bag through the importer (poses only on /tf and
/tf_static); fine-tuning must get back the same images, depth and poses the folder holds and take
steps that move the weights through the reprojection warp term.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mvinverse_ros.bag.importer import import_rgbd
from mvinverse_ros.model import build_model, save_checkpoint
from mvinverse_ros.params import load_params
from mvinverse_ros.train.consistency import (FinetuneConfig, finetune, load_sequence,
                                             neighbour_correspondences)
from test_import_rgbd import few_frames

FRAMES = 4
SIZE = (56, 42)


@pytest.fixture(scope="module")
def folder_and_bag(sevenscenes_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("finetune_bag")
    folder = few_frames(sevenscenes_dir, root / "seq", FRAMES)
    import_rgbd(folder, root / "bag", fps=10.0)
    return folder, root / "bag"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bag_sequence_matches_the_dataset_it_came_from(folder_and_bag):
    folder, bag = folder_and_bag
    from_bag = load_sequence(bag, SIZE)
    from_folder = load_sequence(folder, SIZE)
    assert len(from_bag.images) == FRAMES
    assert from_bag.depths is not None and from_bag.poses is not None and from_bag.cameras is not None
    for a, b in zip(from_bag.images, from_folder.images):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(from_bag.depths, from_folder.depths):
        np.testing.assert_allclose(np.nan_to_num(a), b, atol=1e-3)  # bag: NaN invalid; folder: 0 invalid
    for a, b in zip(from_bag.poses, from_folder.poses):  # via odom -> camera_link -> optical on tf
        # The dataset's rotations are orthonormal to ~1e-4 only; tf quaternions make them exact.
        np.testing.assert_allclose(a, b, atol=2e-4)
    np.testing.assert_allclose(from_bag.cameras[0].K, from_folder.cameras[0].K, atol=1e-6)
    pairs = neighbour_correspondences(from_bag, "auto")
    assert len(pairs) == FRAMES - 1 and all(len(p) > 0.3 * SIZE[0] * SIZE[1] for p in pairs)


def test_bag_without_the_configured_depth_falls_back_to_flow(folder_and_bag):
    _, bag = folder_and_bag
    no_depth = load_params(None, {"inputs.depth_topics": "['']"})
    sequence = load_sequence(bag, SIZE, limit=2, params=no_depth)
    assert len(sequence.images) == 2 and sequence.depths is None
    with pytest.raises(ValueError, match="needs depth"):
        neighbour_correspondences(sequence, "depth")


def test_finetune_on_a_bag_steps_through_reprojection(folder_and_bag, tmp_path):
    _, bag = folder_and_bag
    start = tmp_path / "start.safetensors"
    save_checkpoint(build_model("tiny"), start, "tiny")
    history = finetune(bag, str(start), tmp_path / "ft", FinetuneConfig(steps=2, window=3, lr=1e-3),
                       size=SIZE, log=lambda _: None)
    assert [h["correspondence"] for h in history] == ["depth", "depth"]
    assert all(np.isfinite(h["loss"]) for h in history)
    assert history[0]["warp"] > 0 and history[0]["anchor"] == pytest.approx(0.0, abs=1e-12)
    before, after = load_file(start), load_file(tmp_path / "ft" / "last.safetensors")
    assert before.keys() == after.keys()
    moved = sum(not torch.equal(before[k], after[k]) for k in before)
    assert moved > len(before) // 2
