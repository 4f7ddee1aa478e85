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
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fused: bool = True, scores_budget_bytes: int = 256 * 2**20
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of q [..., L, d] over k, v [..., S, d] (same leading axes, scale 1/sqrt(d)) and its log-normaliser.

    Returns (out [..., L, d] in v's dtype, lse [..., L] float32). fused=False forces the explicit
    softmax (the path of non-CPU devices), e.g. to test the two against each other; it forms the
    float32 scores of at most `scores_budget_bytes` at a time.
    """
    flat_q, flat_k, flat_v = (t.reshape(-1, 1, *t.shape[-2:]) for t in (q, k, v))  # [batch * heads, 1, L, d]
    if fused and q.device.type == "cpu" and _CPU_ATTENTION_WITH_LSE is not None:
        out, lse = _CPU_ATTENTION_WITH_LSE(flat_q, flat_k, flat_v)  # takes exactly [batch, heads, length, d]
        return out.reshape(q.shape), lse.reshape(q.shape[:-1]).float()
    step = max(1, scores_budget_bytes // (4 * q.shape[-2] * k.shape[-2]))
    outs, lses = [], []
    for start in range(0, flat_q.shape[0], step):
        rows = slice(start, start + step)
        scores = torch.matmul(flat_q[rows].float(), flat_k[rows].float().transpose(-1, -2)) * q.shape[-1] ** -0.5
        lse = torch.logsumexp(scores, dim=-1)
        outs.append(torch.matmul(torch.exp(scores - lse[..., None]), flat_v[rows].float()).to(v.dtype))
        lses.append(lse)
    return torch.cat(outs).reshape(q.shape), torch.cat(lses).reshape(q.shape[:-1])


def merge_partials(outs: torch.Tensor, lses: torch.Tensor) -> torch.Tensor:
    """Attention over the union of J disjoint key sets from outs [J, ..., L, d] and lses [J, ..., L] -> [..., L, d]."""
    weights = torch.softmax(lses.float(), dim=0)
    return (weights[..., None] * outs.float()).sum(dim=0).to(outs.dtype)
