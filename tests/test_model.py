"""Presets, the split API the streaming engine relies on, input checks, float32 soundness, training."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mvinverse_ros.model import HEADS, EncodedFrames, ModelError, build_model
from mvinverse_ros.model.layers import attention_partials, merge_partials
from mvinverse_ros.model.parity import synthetic_tensor


def synthetic(preset: str) -> torch.nn.Module:
    """A preset with the parity fill rule's weights: deterministic, and scaled like the fixture's."""
    model = build_model(preset).eval()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            tensor.copy_(synthetic_tensor(name, tuple(tensor.shape), tensor.dtype))
    return model


def module_types(model: torch.nn.Module) -> set[type]:
    return {type(m) for m in model.modules()}


def test_presets_share_one_code_path_and_have_their_sizes():
    with torch.device("meta"):
        models = {name: build_model(name) for name in ("official", "small", "tiny")}
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    assert counts["official"] == 1_014_891_467
    assert 1_000_000 < counts["small"] < 10_000_000
    assert counts["tiny"] < 1_000_000
    assert module_types(models["small"]) == module_types(models["official"]) == module_types(models["tiny"])
    names = {name: {k.split(".")[0] for k in m.state_dict()} for name, m in models.items()}
    assert names["small"] == names["official"] == names["tiny"]  # every part, incl. the ResNeXt branch
    with pytest.raises(ModelError, match="unknown model preset 'large'"):
        build_model("large")


def test_split_api_composes_to_forward_with_cached_frames():
    """Frames encoded one at a time, stacked and reordered give exactly forward's outputs."""
    model = synthetic("small")
    images = torch.rand(1, 3, 3, 42, 70, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = model(images, return_logits=True)
        cache = [model.encode_frames(images[0, i:i + 1]) for i in range(3)]
        window = EncodedFrames.cat([cache[2], cache[0], cache[1]]).index([1, 2, 0])
        assert window.patch_grid == (3, 5) and window.image_hw == (42, 70)
        assert [tuple(d.shape) for d in window.detail] == [
            (3, 64, 12, 20), (3, 128, 6, 10), (3, 256, 3, 5), (3, 512, 2, 3)
        ]
        pairs = model.decode(window.tokens[None], window.patch_grid)
        assert len(pairs) == 4 and pairs[0].shape == (1, 3, 5 + 15, 256)
        assert len(model.decode(window.tokens[None], window.patch_grid, all_pairs=True)) == 4
        newest = model.run_heads([p[0, 2:] for p in pairs], window.index(2).detail, window.image_hw, return_logits=True)
    for name in HEADS:
        assert torch.allclose(newest[name], reference[name][0, 2:], atol=1e-6), name
        assert newest[f"{name}_logits"].shape[1:] == (HEADS[name][0], 42, 70)
    assert newest["normal"].norm(dim=-1).sub(1).abs().max() < 1e-5


@pytest.mark.parametrize("shape", [(1, 2, 3, 70, 42), (2, 3, 3, 28, 56)])
def test_float32_matches_float64_of_the_same_weights(shape):
    """Portrait and landscape, batch > 1: float32 lands within the parity tolerances of float64.

    So no stage (RoPE tables, position resize, SDPA, head upsampling) loses precision at these shapes.
    """
    model = synthetic("small")
    images = torch.rand(shape, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        single = model(images, return_logits=True)
        double = model.double()(images.double(), return_logits=True)
    for name, value in single.items():
        tolerance = 5e-5 if name == "normal" else 1e-6 if name in HEADS else 5e-6
        diff = (value.double() - double[name]).abs().max().item()
        assert diff <= tolerance, f"{name} float32 vs float64: {diff:.3g}"
    for name, (channels, _, _) in HEADS.items():
        assert single[name].shape == (*shape[:2], *shape[-2:], channels)


def test_bad_inputs_raise_clear_errors():
    model = build_model("tiny").eval()
    with pytest.raises(ModelError, match="not a multiple of the patch size 14"):
        model(torch.rand(1, 2, 3, 28, 30))
    with pytest.raises(ModelError, match=r"expects \[B, N, 3, H, W\]"):
        model(torch.rand(2, 3, 28, 28))
    with pytest.raises(ModelError, match=r"expects \[F, 3, H, W\]"):
        model.encode_frames(torch.rand(2, 1, 28, 28))
    with pytest.raises(ModelError, match="different sizes"):
        parts = [model.encode_frames(torch.rand(1, 3, 28, w)) for w in (28, 42)]
        EncodedFrames.cat(parts)


def test_tiny_trains_every_parameter():
    """One optimisation step reaches every parameter (encoder positions, registers, ResNeXt, heads)."""
    model = build_model("tiny").eval()
    images = torch.rand(2, 2, 3, 28, 42, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():  # an evaluation pass first must not poison cached tables
        model(images)
    model.train()
    outputs = model(images)
    loss = sum(outputs[name].square().mean() for name in HEADS)
    loss.backward()
    without_grad = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not without_grad, without_grad
    before = model.register_token.detach().clone()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    assert not torch.equal(before, model.register_token)


def test_bfloat16_autocast_stays_close_to_float32():
    """The engine's reduced-precision mode: q/k/v keep one dtype through QK-norm and RoPE."""
    model = synthetic("tiny")
    images = torch.rand(1, 2, 3, 28, 42, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        reference = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reduced = model(images)
    for name in HEADS:
        assert (reduced[name].float() - reference[name]).abs().max() < 0.02, name


@pytest.mark.parametrize("fused, budget", [(True, 2**20), (False, 2**20), (False, 4 * 20 * 20 * 4)])
def test_attention_over_split_keys_merges_to_the_attention_over_all(fused, budget):
    """The streaming engine's per-frame-pair attention: pieces over disjoint key sets merge exactly.

    The smallest budget makes the explicit path form its scores four (batch, head) rows at a time.
    """
    generator = torch.Generator().manual_seed(5)
    # Large logits (x4) make the softmax peaky, where a careless merge would overflow or lose mass.
    q, k, v = (torch.randn(2, 3, 20, 16, generator=generator) * scale for scale in (4.0, 4.0, 1.0))
    parts = [attention_partials(q, k[:, :, keys], v[:, :, keys], fused=fused, scores_budget_bytes=budget)
             for keys in (slice(0, 1), slice(1, 9), slice(9, 20))]
    merged = merge_partials(torch.stack([out for out, _ in parts]), torch.stack([lse for _, lse in parts]))
    assert torch.allclose(merged, F.scaled_dot_product_attention(q, k, v), atol=2e-5, rtol=0)
    out, lse = attention_partials(q, k, v, fused=fused, scores_budget_bytes=budget)
    assert lse.dtype == torch.float32 and out.shape == q.shape
    assert torch.allclose(lse, torch.logsumexp(q @ k.transpose(-1, -2) / 4.0, dim=-1), atol=1e-5, rtol=0)


def test_first_global_attention_from_frame_pairs_reproduces_the_decoder():
    """decode_rest with block 1's attention assembled from per-frame inputs equals the plain decode."""
    model = synthetic("small")
    for block in model.decoder:  # active residual branches, so a wrong block-1 result shows
        torch.nn.init.normal_(block.ls1.gamma, 0, 0.5)
    tokens = torch.randn(1, 3, 15, 128, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        started = model.decode_start(tokens, (3, 5))
        q, k, v = model.first_global_inputs(started[0], (3, 5))  # each [frames, heads, R + P, head_dim]
        rows = []
        for query in range(3):
            pieces = [attention_partials(q[query], k[key], v[key]) for key in range(3)]
            rows.append(merge_partials(torch.stack([o for o, _ in pieces]), torch.stack([lse for _, lse in pieces])))
        first_attention = torch.stack(rows)[None]
        for output_frames in (None, [2], [0, 2]):
            plain = model.decode_rest(started, (3, 5), output_frames=output_frames)
            assembled = model.decode_rest(started, (3, 5), output_frames=output_frames, first_attention=first_attention)
            for mine, reference in zip(assembled, plain):
                assert torch.allclose(mine, reference, atol=2e-5, rtol=0)
