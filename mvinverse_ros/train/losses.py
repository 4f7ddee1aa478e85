"""MVInverse's supervised losses, all masked to valid pixels, all weighted 1.

Maps are channel-last, [F, H, W, C] (frames flattened out of [B, N, ...]); masks are [F, H, W] bool.
- albedo: MSE (scale-invariant after a warm-up: each channel of each frame rescaled by its
  least-squares scale, since albedo and shading trade a global factor) + multi-scale gradient loss;
- metallic, roughness, shading: MSE + multi-scale gradient loss;
- normal: cosine loss 1 - <n_pred, n_gt>.
"""
from __future__ import annotations

import torch

MATERIAL_KEYS = ("albedo", "metallic", "roughness", "shading")
GRADIENT_SCALES = 4


def _valid_count(mask: torch.Tensor) -> torch.Tensor:
    return mask.sum().clamp_min(1)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over valid pixels (and all channels)."""
    err = ((pred - target) ** 2).mean(-1)
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
                  scale_invariant_albedo: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of all terms (weights 1) and each term's value for logging.

    Args:
        pred: maps keyed albedo/metallic/roughness/shading/normal, each [F, H, W, C].
        target: ground truth with the same keys and shapes.
        mask: [F, H, W] bool, pixels with ground truth.
        scale_invariant_albedo: use the per-channel least-squares scale on albedo (after warm-up).
    """
    parts: dict[str, torch.Tensor] = {}
    for key in MATERIAL_KEYS:
        p, t = pred[key], target[key]
        if key == "albedo" and scale_invariant_albedo:
            p = p * least_squares_scale(p, t, mask)
        parts[f"{key}_mse"] = masked_mse(p, t, mask)
        parts[f"{key}_grad"] = gradient_loss(p, t, mask)
    parts["normal_cos"] = cosine_normal_loss(pred["normal"], target["normal"], mask)
    total = torch.stack(list(parts.values())).sum()
    return total, {k: float(v.detach()) for k, v in parts.items()}
