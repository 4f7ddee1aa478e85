"""MVInverse's supervised losses, all masked to valid pixels.

Maps are channel-last, [F, H, W, C] (frames flattened out of [B, N, ...]); masks are [F, H, W] bool.
- albedo: MSE (scale-invariant after a warm-up: each channel of each frame rescaled by its
  least-squares scale, since albedo and shading trade a global factor) + multi-scale gradient loss,
  plus a weak plain MSE that keeps the free scale near the truth's;
- shading: MSE + multi-scale gradient loss;
- metallic, roughness: binary cross-entropy on the head's logits (soft targets) + multi-scale
  gradient loss. The paper's MSE goes through a sigmoid, whose gradient vanishes once it saturates:
  metallic is 0 on most pixels, and a model trained with MSE pushed its metallic logits to about
  -800, where no metal pixel could ever pull them back (measured on the earlier bundled model).
  Cross-entropy's gradient is (prediction - target) at any logit, and its minimiser is the same
  conditional mean as MSE's;
- normal: cosine loss 1 - <n_pred, n_gt>.
"""
from __future__ import annotations

import torch

MATERIAL_KEYS = ("albedo", "metallic", "roughness", "shading")
LOGIT_KEYS = ("metallic", "roughness")  # bounded maps trained with cross-entropy on their logits
GRADIENT_SCALES = 4


def _valid_count(mask: torch.Tensor) -> torch.Tensor:
    return mask.sum().clamp_min(1)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over valid pixels (and all channels)."""
    err = ((pred - target) ** 2).mean(-1)
    return (err * mask).sum() / _valid_count(mask)


def masked_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of sigmoid(logits) against soft targets in [0, 1], over valid pixels."""
    err = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(-1)
    return (err * mask).sum() / _valid_count(mask)


def gradient_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                  scales: int = GRADIENT_SCALES) -> torch.Tensor:
    """Multi-scale gradient matching: L1 of the x/y differences of (pred - target) at strides 1, 2, 4, ...

    Only differences between two valid pixels count; each scale is averaged, scales are summed.
    """
    total = pred.new_zeros(())
    for s in range(scales):
        step = 2**s
        diff = (pred - target)[:, ::step, ::step].mean(-1)
        m = mask[:, ::step, ::step]
        for dim in (1, 2):
            if diff.shape[dim] < 2:
                continue
            d = diff.diff(dim=dim).abs()
            pair = m.narrow(dim, 1, m.shape[dim] - 1) & m.narrow(dim, 0, m.shape[dim] - 1)
            total = total + (d * pair).sum() / _valid_count(pair)
    return total


def least_squares_scale(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per frame, per channel s minimising sum over valid pixels of (s * pred - target)^2; [F, 1, 1, C]."""
    m = mask[..., None].to(pred.dtype)
    num = (pred * target * m).sum(dim=(1, 2), keepdim=True)
    den = (pred * pred * m).sum(dim=(1, 2), keepdim=True).clamp_min(1e-6)
    return num / den


def cosine_normal_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(angle) between predicted and true unit normals over valid pixels."""
    cos = torch.nn.functional.cosine_similarity(pred, target, dim=-1, eps=1e-6)
    return ((1 - cos) * mask).sum() / _valid_count(mask)


def material_loss(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor], mask: torch.Tensor,
                  scale_invariant_albedo: bool, albedo_anchor: float = 0.0,
                  bounded_weight: float = 1.0,
                  no_gradient: tuple[str, ...] = ()) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of all terms and each term's value for logging.

    Args:
        pred: maps keyed albedo/metallic/roughness/shading/normal, each [F, H, W, C], and
            `metallic_logits`/`roughness_logits` of the same shape.
        target: ground truth with the same keys and shapes (no logits).
        mask: [F, H, W] bool, pixels with ground truth.
        scale_invariant_albedo: use the per-channel least-squares scale on albedo (after warm-up).
        albedo_anchor: weight of the plain albedo MSE added to the scale-invariant one.
        bounded_weight: weight of the metallic and roughness terms (both cross-entropy and gradient).
        no_gradient: maps trained without the gradient term. L1 on differences is smallest, for a
            model that cannot yet place a map's edges, with no differences at all (the median of
            the truth's mostly-zero differences), so it pulls an unsure head flat: a roughness head
            trained with it went to a spread of 0.000 within 50 steps and stayed there.
    """
    parts: dict[str, torch.Tensor] = {}
    for key in MATERIAL_KEYS:
        p, t = pred[key], target[key]
        weight = bounded_weight if key in LOGIT_KEYS else 1.0
        if key in LOGIT_KEYS:
            parts[f"{key}_bce"] = weight * masked_bce(pred[f"{key}_logits"], t, mask)
        elif key == "albedo" and scale_invariant_albedo:
            if albedo_anchor:
                parts["albedo_anchor"] = albedo_anchor * masked_mse(p, t, mask)
            p = p * least_squares_scale(p, t, mask)
            parts["albedo_mse"] = masked_mse(p, t, mask)
        else:
            parts[f"{key}_mse"] = masked_mse(p, t, mask)
        if key not in no_gradient:
            parts[f"{key}_grad"] = weight * gradient_loss(p, t, mask)
    parts["normal_cos"] = cosine_normal_loss(pred["normal"], target["normal"], mask)
    total = torch.stack(list(parts.values())).sum()
    return total, {k: float(v.detach()) for k, v in parts.items()}
