"""A short CI training run lowers the loss; checkpoints resume; consistency fine-tuning runs on real frames."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("mitsuba")
pytestmark = pytest.mark.usefixtures("mitsuba_jit")

from mvinverse_ros.geometry.correspondence import Correspondence  # noqa: E402
from mvinverse_ros.model import build_model, load_model, save_checkpoint  # noqa: E402
from mvinverse_ros.train.consistency import FinetuneConfig, finetune, warp_difference  # noqa: E402
from mvinverse_ros.datasets.synthetic import RenderSettings, generate  # noqa: E402
from mvinverse_ros.train.trainer import (FINAL_LR_FRACTION, LOG_FILE, OPTIMIZER_FILE, TrainConfig,  # noqa: E402
                                         learning_rate, load_optimizer, load_training_state, save_optimizer,
                                         train)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    generate(out, 1, 2, 2, seed=11, settings=RenderSettings(56, 42, spp=4, aov_spp=1))
    return out


def test_short_training_run_lowers_the_loss(scenes, tmp_path):
    config = TrainConfig(preset="tiny", steps=40, min_views=2, max_views=2, lr=1e-3, lr_warmup=5, albedo_warmup=1000,
                         checkpoint_every=40, seed=0)
    history = train(scenes, tmp_path, config, log=lambda _: None)
    losses = [h["loss"] for h in history]
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:8])
    loaded = load_model(str(tmp_path / "last.safetensors"))
    assert loaded.preset == "tiny" and loaded.native_long_side == 56  # the scenes' long side: run at it


def test_training_resumes_from_its_checkpoint(scenes, tmp_path):
    config = TrainConfig(preset="tiny", steps=2, checkpoint_every=2, lr=1e-3)
    train(scenes, tmp_path, config, log=lambda _: None)
    _, preset, step = load_training_state(tmp_path, torch.device("cpu"))
    assert (preset, step) == ("tiny", 2)
    train(scenes, tmp_path, TrainConfig(preset="small", steps=3, checkpoint_every=5), resume=True, log=lambda _: None)
    model, preset, step = load_training_state(tmp_path, torch.device("cpu"))
    assert (preset, step) == ("tiny", 3)  # the checkpoint's preset wins over the config's
    steps = [json.loads(line)["step"] for line in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert steps == [1, 2, 3]
    optimizer = torch.optim.Adam(model.parameters())
    load_optimizer(optimizer, tmp_path / OPTIMIZER_FILE)
    assert {float(s["step"]) for s in optimizer.state_dict()["state"].values()} == {3.0}


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    config = TrainConfig(steps=1100, lr=1e-3, lr_warmup=100)
    assert learning_rate(0, config) == pytest.approx(1e-5)
    assert learning_rate(99, config) == pytest.approx(1e-3)
    assert learning_rate(600, config) == pytest.approx(1e-3 * (FINAL_LR_FRACTION + 1) / 2)
    assert learning_rate(1100, config) == pytest.approx(1e-3 * FINAL_LR_FRACTION)


def test_optimizer_state_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    save_optimizer(optimizer, tmp_path / "opt.safetensors", step=1)
    other = torch.optim.Adam(model.parameters(), lr=0.5)
    load_optimizer(other, tmp_path / "opt.safetensors")
    a, b = optimizer.state_dict(), other.state_dict()
    assert b["param_groups"][0]["lr"] == 0.01
    for k in a["state"]:
        assert torch.equal(a["state"][k]["exp_avg_sq"], b["state"][k]["exp_avg_sq"])


def test_warp_difference_zero_for_matching_shifted_maps():
    source = torch.rand(6, 8, 3)
    target = torch.roll(source, 1, dims=1)  # target(col + 1) = source(col)
    rows, cols = np.mgrid[0:6, 0:7]
    corr = Correspondence(rows.ravel(), cols.ravel(), cols.ravel() + 1.0, rows.ravel().astype(float))
    assert warp_difference(source, target, corr).item() == pytest.approx(0.0, abs=1e-10)
    assert warp_difference(source, torch.roll(source, 2, dims=1), corr).item() > 0.01


def test_consistency_finetune_on_real_frames(sevenscenes_dir, tmp_path):
    start = tmp_path / "start.safetensors"
    save_checkpoint(build_model("tiny"), start, "tiny")
    history = finetune(sevenscenes_dir, str(start), tmp_path / "ft", FinetuneConfig(steps=2, window=3),
                       size=(56, 42), limit=4, log=lambda _: None)
    assert len(history) == 2 and all(np.isfinite(h["warp"]) and np.isfinite(h["anchor"]) for h in history)
    assert load_model(str(tmp_path / "ft" / "last.safetensors")).native_long_side == 56
    assert load_model(str(tmp_path / "ft" / "last.safetensors")).preset == "tiny"
