"""Metrics on known values; correspondences and consistency on the real 7-Scenes frames."""
import json

import numpy as np
import pytest

from mvinverse_ros.eval import metrics
from mvinverse_ros.geometry.correspondence import optical_flow, reprojection
from mvinverse_ros.eval.suite import evaluate_sequence, format_table, load_rgbd_frames


def test_psnr_ssim_rmse_known_values():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.2, 0.8, (32, 40, 3))
    mask = np.ones((32, 40), bool)
    assert metrics.psnr(gt + 0.1, gt, mask) == pytest.approx(20.0)
    assert metrics.rmse(gt + 0.1, gt, mask) == pytest.approx(0.1)
    assert metrics.ssim(gt, gt, mask) == pytest.approx(1.0)
    assert metrics.ssim(np.full_like(gt, 0.5), gt, mask) < 0.1
    mask[:, :20] = False
    noisy = gt.copy()
    noisy[:, :20] = 0.0  # errors outside the mask do not count
    assert metrics.psnr(noisy, gt, mask) > 100


def test_albedo_alignment_is_per_channel_least_squares():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0.1, 0.9, (16, 16, 3))
    mask = np.ones((16, 16), bool)
    aligned = metrics.scale_aligned(gt * np.array([0.5, 2.0, 0.8]), gt, mask)
    assert np.allclose(aligned, gt)


def test_normal_errors_known_angles():
    gt = np.zeros((2, 2, 3))
    gt[..., 2] = -1
    pred = gt.copy()
    pred[0, 0] = [0, 1, 0]                             # 90 degrees
    pred[0, 1] = [0, np.sin(0.2), -np.cos(0.2)]        # 11.46 degrees
    out = metrics.normal_errors(pred, gt, np.ones((2, 2), bool))
    assert out["normal_mean_deg"] == pytest.approx((90 + np.degrees(0.2)) / 4)
    assert out["normal_under_11.25"] == pytest.approx(50.0)
    assert out["normal_under_30"] == pytest.approx(75.0)


@pytest.fixture(scope="module")
def kitchen(sevenscenes_dir):
    return load_rgbd_frames(sevenscenes_dir, (160, 120), limit=8)


def test_reprojection_on_real_frames_matches_colours(kitchen):
    """Pixels carried from frame 0 to frame 3 by real depth and poses see the same colour.

    Far more closely than pixels paired by the identity (the camera moved).
    """
    images, depths, cameras, poses = kitchen
    corr = reprojection(depths[0], cameras[0], poses[0], depths[3], cameras[3], poses[3])
    assert len(corr) > 0.3 * 160 * 120
    grey = [im.astype(np.float64).mean(-1) / 255 for im in images]
    r, c = corr.nearest()
    warped = np.sqrt(np.mean((grey[0][corr.rows, corr.cols] - grey[3][r, c]) ** 2))
    identity = np.sqrt(np.mean((grey[0][corr.rows, corr.cols] - grey[3][corr.rows, corr.cols]) ** 2))
    assert warped < 0.6 * identity
    assert metrics.consistency_rmse(grey, {(0, 3): corr}) == pytest.approx(warped)


def test_optical_flow_recovers_a_known_shift(kitchen):
    image = kitchen[0][0]
    shifted = np.roll(image, 3, axis=1)
    corr = optical_flow(image, shifted)
    assert len(corr) > 0.5 * image.shape[0] * image.shape[1]
    assert np.median(corr.u - corr.cols) == pytest.approx(3.0, abs=0.25)
    assert np.median(corr.v - corr.rows) == pytest.approx(0.0, abs=0.25)


def test_sequence_suite_baselines(sevenscenes_dir):
    """Constant maps are perfectly consistent; the input image as albedo is not (lighting changes)."""
    results = evaluate_sequence(sevenscenes_dir, model=None, long_side=112, window=4, size=(80, 60), limit=8,
                                methods=("constant", "image-as-albedo"))
    assert results["constant"]["temporal_albedo_rmse"] == 0.0
    assert 0.0 < results["image-as-albedo"]["temporal_albedo_rmse"] < 0.3
    assert "| constant |" in format_table(results, "7-Scenes")


def test_eval_command_writes_table_and_json(tmp_path, capsys, mitsuba_jit):
    from mvinverse_ros.cli import main
    from mvinverse_ros.datasets.synthetic import RenderSettings, generate

    generate(tmp_path / "scenes", 1, 2, 2, seed=3, settings=RenderSettings(56, 42, spp=4, aov_spp=1), style="heldout")
    report = tmp_path / "eval.json"
    assert main(["eval", "--synthetic", str(tmp_path / "scenes"), "--methods", "constant,image-as-albedo",
                 "--json", str(report)]) == 0
    results = json.loads(report.read_text())["results"]["synthetic"]
    assert results["constant"]["multiview_albedo_rmse"] == 0.0
    assert results["image-as-albedo"]["multiview_albedo_rmse"] > 0.0
    assert 0 < results["constant"]["normal_mean_deg"] < 90
    # A constant has no spread; the ground truth of a held-out room has some; the least-squares
    # scale can only lower the shading error of a prediction in [0, 1].
    assert results["constant"]["metallic_spread"] == results["constant"]["roughness_spread"] == 0.0
    assert results["ground truth"]["roughness_spread"] > 0.05
    assert results["constant"]["shading_si_rmse"] <= results["constant"]["shading_rmse"] + 1e-9
    assert "| image-as-albedo |" in capsys.readouterr().out
