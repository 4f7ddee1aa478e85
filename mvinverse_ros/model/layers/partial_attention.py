"""Softmax attention over a union of key sets, assembled from the attention over each set.

Attention of queries Q over keys K_1 ∪ ... ∪ K_n equals sum_j w_j O_j, where O_j is the attention
of Q over K_j alone, lse_j the log of its softmax normaliser and w_j = softmax_j(lse_j). A stream
whose window shares frames with the previous window keeps the (O_j, lse_j) of frame pairs it has
already seen and computes only the pairs a new frame brings.
"""
from __future__ import annotations

import torch

# The fused CPU kernel behind F.scaled_dot_product_attention, which also returns the log-normaliser
# (the public API does not). Elsewhere the explicit softmax below computes the same.
_CPU_ATTENTION_WITH_LSE = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def attention_partials(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fused: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of q [..., L, d] over k, v [..., S, d] (same leading axes, scale 1/sqrt(d)) and its log-normaliser.

    Returns (out [..., L, d] in v's dtype, lse [..., L] float32). fused=False forces the explicit
    softmax (the path of non-CPU devices), e.g. to test the two against each other.
    """
    if fused and q.device.type == "cpu" and _CPU_ATTENTION_WITH_LSE is not None:
        # The kernel takes exactly [batch, heads, length, d].
        out, lse = _CPU_ATTENTION_WITH_LSE(*(t.reshape(-1, 1, *t.shape[-2:]) for t in (q, k, v)))
        return out.reshape(q.shape), lse.reshape(q.shape[:-1]).float()
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
    lse = torch.logsumexp(scores, dim=-1)
    return torch.matmul(torch.exp(scores - lse[..., None]), v.float()).to(v.dtype), lse


def merge_partials(outs: torch.Tensor, lses: torch.Tensor) -> torch.Tensor:
    """Attention over the union of J disjoint key sets from outs [J, ..., L, d] and lses [J, ..., L] -> [..., L, d]."""
    weights = torch.softmax(lses.float(), dim=0)
    return (weights[..., None] * outs.float()).sum(dim=0).to(outs.dtype)
