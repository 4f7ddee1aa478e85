"""Evaluation runs for the model and trivial baselines.

Held-out synthetic scenes give material metrics and multi-view consistency; real RGB-D sequences
give temporal reprojection consistency. Spreads (the standard deviation of a map over a frame's
valid pixels) show whether a head varies within scenes at all; the ground truth's spread is reported
beside them.

Methods:
- multi-view: the model on all frames of a window at once (what the robot runs);
- single-view: the model on each frame alone (no cross-view attention);
- image-as-albedo: the input image as albedo, other maps constant;
- constant: grey albedo/shading 0.5, roughness 0.5, metallic 0, normals facing the camera.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path

import numpy as np

from mvinverse_ros.eval import metrics
from mvinverse_ros.geometry.correspondence import Correspondence, reprojection
from mvinverse_ros.datasets.rgbd import load_rgbd_frames
from mvinverse_ros.types import CameraModel, MaterialMaps

METHODS = ("multi-view", "single-view", "image-as-albedo", "constant")
CONSISTENCY_KEYS = ("albedo", "roughness", "metallic", "shading")
SPREAD_KEYS = ("metallic", "roughness")


def constant_maps(image: np.ndarray, albedo: np.ndarray | None = None) -> MaterialMaps:
    h, w = image.shape[:2]
    normal = np.zeros((h, w, 3), np.float32)
    normal[..., 2] = -1.0
    return MaterialMaps(albedo=np.full((h, w, 3), 0.5, np.float32) if albedo is None else albedo,
                        roughness=np.full((h, w), 0.5, np.float32), metallic=np.zeros((h, w), np.float32),
                        normal=normal, shading=np.full((h, w, 3), 0.5, np.float32))


def method_maps(method: str, images: list[np.ndarray], model, long_side: int) -> list[MaterialMaps]:
    """Per-frame maps of one method on one window of uint8 RGB frames."""
    from mvinverse_ros.inference import predict

    if method == "multi-view":
        return predict(images, model, long_side=long_side)
    if method == "single-view":
        return [predict([im], model, long_side=long_side)[0] for im in images]
    if method == "image-as-albedo":
        return [constant_maps(im, im.astype(np.float32) / 255.0) for im in images]
    if method == "constant":
        return [constant_maps(im) for im in images]
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


@dataclass
class _Accumulator:
    """Per-frame metric means and consistency sums, merged over scenes before the root."""

    values: dict = None
    sums: dict = None

    def __post_init__(self):
        self.values = defaultdict(list)
        self.sums = defaultdict(lambda: [0.0, 0])

    def add_consistency(self, prefix: str, maps: list[MaterialMaps], pairs: dict[tuple[int, int], Correspondence]):
        for key in CONSISTENCY_KEYS:
            total, count = metrics.consistency_sums([getattr(m, key) for m in maps], pairs)
            self.sums[f"{prefix}_{key}"][0] += total
            self.sums[f"{prefix}_{key}"][1] += count

    def result(self) -> dict[str, float]:
        out = {k: float(np.mean(v)) for k, v in self.values.items()}
        out.update({f"{k}_rmse": float(np.sqrt(s / n)) if n else float("nan") for k, (s, n) in self.sums.items()})
        return out


def _pairs(depths, cameras, poses, ordered_pairs) -> dict[tuple[int, int], Correspondence]:
    return {(i, j): reprojection(depths[i], cameras[i], poses[i], depths[j], cameras[j], poses[j])
            for i, j in ordered_pairs}


def evaluate_synthetic(folder: str | Path, model, long_side: int, methods=METHODS) -> dict[str, dict[str, float]]:
    """Material metrics against ground truth and multi-view consistency (all view pairs) per method."""
    from mvinverse_ros.datasets.synthetic import load_scene

    paths = sorted(Path(folder).glob("scene_*.npz"))
    if not paths:
        raise FileNotFoundError(f"no scene_*.npz in {folder}")
    acc = {m: _Accumulator() for m in methods}
    truth = _Accumulator()
    for path in paths:
        scene = load_scene(path)
        images = [np.round(im * 255).astype(np.uint8) for im in scene["rgb"]]
        n, h, w = scene["depth"].shape
        cameras = [CameraModel(w, h, K.astype(np.float64)) for K in scene["K"]]
        pairs = _pairs(scene["depth"], cameras, scene["cam_to_world"].astype(np.float64), permutations(range(n), 2))
        for method in methods:
            maps = method_maps(method, images, model, long_side)
            for v, m in enumerate(maps):
                mask = scene["valid"][v]
                gt_albedo = scene["albedo"][v]
                aligned = metrics.scale_aligned(m.albedo, gt_albedo, mask)
                acc[method].values["albedo_psnr"].append(metrics.psnr(aligned, gt_albedo, mask))
                acc[method].values["albedo_ssim"].append(metrics.ssim(aligned, gt_albedo, mask))
                acc[method].values["metallic_rmse"].append(metrics.rmse(m.metallic, scene["metallic"][v], mask))
                acc[method].values["roughness_rmse"].append(metrics.rmse(m.roughness, scene["roughness"][v], mask))
                acc[method].values["shading_rmse"].append(metrics.rmse(m.shading, scene["shading"][v], mask))
                shading_aligned = metrics.scale_aligned(m.shading, scene["shading"][v], mask)
                acc[method].values["shading_si_rmse"].append(metrics.rmse(shading_aligned, scene["shading"][v], mask))
                for key in SPREAD_KEYS:
                    acc[method].values[f"{key}_spread"].append(float(getattr(m, key)[mask].std()))
                for key, value in metrics.normal_errors(m.normal, scene["normal"][v], mask).items():
                    acc[method].values[key].append(value)
            acc[method].add_consistency("multiview", maps, pairs)
        for v, mask in enumerate(scene["valid"]):
            for key in SPREAD_KEYS:
                truth.values[f"{key}_spread"].append(float(scene[key][v][mask].std()))
    return {**{m: a.result() for m, a in acc.items()}, "ground truth": truth.result()}


def evaluate_sequence(folder: str | Path, model, long_side: int, window: int = 4, size: tuple[int, int] = (160, 120),
                      limit: int | None = None, first: int = 0, methods=METHODS) -> dict[str, dict[str, float]]:
    """Reprojection consistency on a real sequence, through its own depth and poses.

    temporal_*: consecutive frames (both directions) inside windows of `window` frames;
    window_*: all pairs of each window.
    """
    images, depths, cameras, poses = load_rgbd_frames(folder, size, limit, first)
    acc = {m: _Accumulator() for m in methods}
    for start in range(0, len(images) - window + 1, window):
        idx = list(range(start, start + window))
        sel = lambda xs: [xs[i] for i in idx]  # noqa: E731
        d, c, p = sel(depths), sel(cameras), sel(poses)
        consecutive = _pairs(d, c, p, [(k, k + 1) for k in range(window - 1)] + [(k + 1, k) for k in range(window - 1)])
        every = _pairs(d, c, p, permutations(range(window), 2))
        for method in methods:
            maps = method_maps(method, sel(images), model, long_side)
            acc[method].add_consistency("temporal", maps, consecutive)
            acc[method].add_consistency("window", maps, every)
    return {m: a.result() for m, a in acc.items()}


def format_table(results: dict[str, dict[str, float]], title: str) -> str:
    """A markdown table, one row per method, one column per metric."""
    columns = sorted({k for r in results.values() for k in r})
    lines = [f"### {title}", "", "| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for method, row in results.items():
        lines.append(f"| {method} | " + " | ".join(f"{row.get(c, float('nan')):.4g}" for c in columns) + " |")
    return "\n".join(lines)
