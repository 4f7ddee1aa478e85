"""Material and consistency metrics (numpy, channel-last maps, boolean masks of valid pixels).

- albedo: PSNR and SSIM after per-channel least-squares scale alignment of the prediction to the
  ground truth over valid pixels (albedo is only defined up to a scale shared with shading);
- metallic, roughness: RMSE; normal: mean angular error and share of pixels under 11.25 / 30 deg;
- consistency: RMSE between a view's maps and another view's maps at corresponding pixels
  (correspondences from depth + poses, see correspondence.py), over all overlapping pixels.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mvinverse_ros.geometry.correspondence import Correspondence

SSIM_SIGMA = 1.5
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2


def _channels(x: np.ndarray) -> np.ndarray:
    return x[..., None] if x.ndim == 2 else x


def scale_aligned(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`pred` times the per-channel scale s minimising sum over mask of (s * pred - gt)^2, clipped to [0, 1]."""
    p, g = _channels(pred).astype(np.float64), _channels(gt).astype(np.float64)
    scale = (p[mask] * g[mask]).sum(0) / np.maximum((p[mask] ** 2).sum(0), 1e-12)
    return np.clip(p * scale, 0.0, 1.0)


def psnr(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Peak signal-to-noise ratio (peak 1) over valid pixels, in dB."""
    mse = float(((_channels(pred) - _channels(gt))[mask] ** 2).mean())
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def ssim(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Mean structural similarity (Gaussian window, sigma 1.5) over valid pixels and channels.

    Invalid pixels of the prediction are replaced by the ground truth so they do not bleed into the
    windows of valid neighbours.
    """
    p, g = _channels(pred).astype(np.float64), _channels(gt).astype(np.float64)
    p = np.where(mask[..., None], p, g)
    blur = lambda x: cv2.GaussianBlur(x, (0, 0), SSIM_SIGMA)  # noqa: E731
    values = []
    for c in range(p.shape[-1]):
        a, b = p[..., c], g[..., c]
        mu_a, mu_b = blur(a), blur(b)
        var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
        s = ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / (
            (mu_a**2 + mu_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2))
        values.append(s[mask])
    return float(np.concatenate(values).mean())


def rmse(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> float:
    """Root mean squared error over valid pixels (and channels)."""
    return float(np.sqrt(((_channels(pred) - _channels(gt))[mask] ** 2).mean()))


def normal_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Mean angular error in degrees and the percentage of pixels under 11.25 and 30 degrees."""
    p = pred[mask] / np.maximum(np.linalg.norm(pred[mask], axis=-1, keepdims=True), 1e-8)
    g = gt[mask] / np.maximum(np.linalg.norm(gt[mask], axis=-1, keepdims=True), 1e-8)
    angle = np.degrees(np.arccos(np.clip((p * g).sum(-1), -1.0, 1.0)))
    return {"normal_mean_deg": float(angle.mean()), "normal_under_11.25": float((angle < 11.25).mean() * 100),
            "normal_under_30": float((angle < 30).mean() * 100)}


def consistency_sums(maps: Sequence[np.ndarray], pairs: dict[tuple[int, int], Correspondence]) -> tuple[float, int]:
    """Sum of squared differences and their count, to be combined over runs before the root.

    Compares maps[i] at the source pixels with maps[j] at their nearest target pixels, over all
    channels of all pairs (i, j).
    """
    total, count = 0.0, 0
    for (i, j), corr in pairs.items():
        r, c = corr.nearest()
        diff = _channels(maps[i])[corr.rows, corr.cols] - _channels(maps[j])[r, c]
        total += float((diff.astype(np.float64) ** 2).sum())
        count += diff.size
    return total, count


def consistency_rmse(maps: Sequence[np.ndarray], pairs: dict[tuple[int, int], Correspondence]) -> float:
    """RMSE over all overlapping pixels of all view pairs (NaN when nothing overlaps)."""
    total, count = consistency_sums(maps, pairs)
    return float(np.sqrt(total / count)) if count else float("nan")
