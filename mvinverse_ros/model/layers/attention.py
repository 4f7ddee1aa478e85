"""Multi-head self-attention with optional per-head QK LayerNorm and 2D RoPE."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mvinverse_ros.model.layers.rope import apply_rope


class Attention(nn.Module):
    """qkv projection -> (QK-norm) -> (RoPE) -> scaled-dot-product attention -> output projection.

    Uses torch's fused SDPA (scale 1/sqrt(head_dim), no mask), so long global sequences never
    materialise the attention matrix on backends that support it. `project` and `output` expose
    the two halves, so a caller can compute the attention itself in pieces (see partial_attention).
    """

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False, qk_norm_eps: float = 1e-5) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else None
        self.k_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else None

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        query_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, L, dim]; rope = (cos, sin) each [L, head_dim] or None.

        query_index: token positions [Q] whose outputs are wanted (all of x still serves as keys and
        values), so a caller needing a few tokens' outputs skips the other queries' work. -> [B, Q, dim].
        """
        return self.output(F.scaled_dot_product_attention(*self.project(x, rope, query_index)))

    def project(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        query_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (of `query_index` only, if given), keys and values of x, each [B, heads, L or Q, head_dim]."""
        dim = x.shape[-1]
        if query_index is None:
            q, k, v = self._split_heads(self.qkv(x), 3)
            query_rope = rope
        else:
            weight, bias = self.qkv.weight, self.qkv.bias
            (q,) = self._split_heads(F.linear(x[:, query_index], weight[:dim], bias[:dim]), 1)
            k, v = self._split_heads(F.linear(x, weight[dim:], bias[dim:]), 2)
            query_rope = None if rope is None else (rope[0][query_index], rope[1][query_index])
        if self.q_norm is not None:
            q, k = self.q_norm(q).to(v.dtype), self.k_norm(k).to(v.dtype)
        if rope is not None:
            q, k = apply_rope(q, *query_rope), apply_rope(k, *rope)
        return q, k, v

    def output(self, attended: torch.Tensor) -> torch.Tensor:
        """Attention result [B, heads, L, head_dim] -> output projection [B, L, dim]."""
        batch, _, length, _ = attended.shape
        return self.proj(attended.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim))

    def _split_heads(self, projected: torch.Tensor, parts: int) -> tuple[torch.Tensor, ...]:
        """[B, L, parts * dim] -> `parts` tensors [B, heads, L, head_dim]."""
        batch, length = projected.shape[:2]
        return projected.reshape(batch, length, parts, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
