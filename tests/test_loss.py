"""The supervised losses on small tensors with values worked out by hand."""
import math

import pytest
import torch

from mvinverse_ros.train.losses import (cosine_normal_loss, gradient_loss, least_squares_scale, masked_bce,
                                        masked_mse, material_loss)


def test_masked_mse_ignores_invalid_pixels():
    pred = torch.zeros(1, 2, 2, 3)
    target = torch.ones(1, 2, 2, 3)
    target[0, 1] = 100.0  # masked out below
    mask = torch.tensor([[[True, True], [False, False]]])
    assert masked_mse(pred, target, mask).item() == pytest.approx(1.0)


def test_gradient_loss_sees_ramps_not_offsets():
    target = torch.rand(1, 8, 8, 1)
    mask = torch.ones(1, 8, 8, dtype=torch.bool)
    assert gradient_loss(target + 0.3, target, mask).item() == pytest.approx(0.0, abs=1e-6)
    ramp = 0.1 * torch.arange(8.0).view(1, 1, 8, 1).expand(1, 8, 8, 1)
    # x differences are 0.1 at stride 1 and 0.2 at stride 2; y differences are 0.
    assert gradient_loss(target + ramp, target, mask, scales=1).item() == pytest.approx(0.1, rel=1e-5)
    assert gradient_loss(target + ramp, target, mask, scales=2).item() == pytest.approx(0.1 + 0.2, rel=1e-5)


def test_gradient_loss_skips_pairs_touching_invalid_pixels():
    pred, target = torch.zeros(1, 1, 3, 1), torch.zeros(1, 1, 3, 1)
    pred[0, 0, 2] = 5.0
    mask = torch.tensor([[[True, True, False]]])
    assert gradient_loss(pred, target, mask, scales=1).item() == 0.0


def test_least_squares_scale_is_per_channel():
    target = torch.rand(2, 4, 4, 3) + 0.1
    pred = target / torch.tensor([2.0, 4.0, 0.5])
    scale = least_squares_scale(pred, target, torch.ones(2, 4, 4, dtype=torch.bool))
    assert torch.allclose(scale.flatten(1), torch.tensor([[2.0, 4.0, 0.5]] * 2), rtol=1e-4)


def test_cosine_normal_loss_values():
    n = torch.tensor([0.0, 0.0, -1.0]).expand(1, 1, 3, 3).clone()
    other = n.clone()
    other[0, 0, 1] = torch.tensor([0.0, 0.0, 1.0])               # opposite: 2
    other[0, 0, 2] = torch.tensor([1.0, 0.0, 0.0])               # orthogonal: 1
    mask = torch.ones(1, 1, 3, dtype=torch.bool)
    assert cosine_normal_loss(other, n, mask).item() == pytest.approx((0 + 2 + 1) / 3)


def test_material_loss_scale_invariant_albedo_forgives_a_global_factor():
    torch.manual_seed(0)
    target = {"albedo": torch.rand(2, 6, 6, 3), "metallic": torch.rand(2, 6, 6, 1), "roughness": torch.rand(2, 6, 6, 1),
              "shading": torch.rand(2, 6, 6, 3),
              "normal": torch.nn.functional.normalize(torch.randn(2, 6, 6, 3), dim=-1)}
    pred = dict(target, albedo=target["albedo"] * 0.5, metallic_logits=torch.logit(target["metallic"]),
                roughness_logits=torch.logit(target["roughness"]))
    mask = torch.ones(2, 6, 6, dtype=torch.bool)
    plain, parts = material_loss(pred, target, mask, scale_invariant_albedo=False)
    invariant, parts_si = material_loss(pred, target, mask, scale_invariant_albedo=True)
    anchored, parts_anchor = material_loss(pred, target, mask, scale_invariant_albedo=True, albedo_anchor=0.1)
    assert parts["albedo_mse"] > 0.01 and parts_si["albedo_mse"] == pytest.approx(0.0, abs=1e-10)
    # Exact predictions leave only the targets' own entropy in the cross-entropy terms.
    entropy = parts["metallic_bce"] + parts["roughness_bce"]
    assert invariant.item() == pytest.approx(entropy, abs=1e-5)
    assert anchored.item() == pytest.approx(entropy + 0.1 * parts["albedo_mse"], rel=1e-5)
    assert plain.item() == pytest.approx(sum(parts.values()), rel=1e-6)
    assert set(parts) == {"albedo_mse", "albedo_grad", "metallic_bce", "metallic_grad", "roughness_bce",
                          "roughness_grad", "shading_mse", "shading_grad", "normal_cos"}
    assert set(parts_anchor) == set(parts) | {"albedo_anchor"}
    _, parts_flat = material_loss(pred, target, mask, scale_invariant_albedo=False, no_gradient=("roughness",))
    assert set(parts) - set(parts_flat) == {"roughness_grad"}
    assert all(math.isfinite(v) for v in parts.values())


def test_cross_entropy_still_pulls_a_saturated_head():
    """At a logit of -20 (a sigmoid at 2e-9), a metal pixel gets no gradient through MSE, a full one through BCE."""
    target = torch.ones(1, 1, 1, 1)
    mask = torch.ones(1, 1, 1, dtype=torch.bool)
    logits = torch.full((1, 1, 1, 1), -20.0, requires_grad=True)
    masked_mse(torch.sigmoid(logits), target, mask).backward()
    mse_grad = logits.grad.abs().item()
    logits.grad = None
    masked_bce(logits, target, mask).backward()
    assert mse_grad < 1e-7 and logits.grad.item() == pytest.approx(-1.0, abs=1e-6)
