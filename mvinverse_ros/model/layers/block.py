"""Pre-norm transformer block with LayerScale on both residual branches."""
from __future__ import annotations

import torch
from torch import nn

from mvinverse_ros.model.layers.attention import Attention
from mvinverse_ros.model.layers.layer_scale import LayerScale
from mvinverse_ros.model.layers.mlp import Mlp


class Block(nn.Module):
    """x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, norm_eps: float, qk_norm: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        query_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, L, dim] -> [B, L, dim], or only the tokens at `query_index` [Q] (all of x attended) -> [B, Q, dim]."""
        return self.finish(x, self.attn(self.norm1(x), rope=rope, query_index=query_index), query_index)

    def attention_inputs(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The attention's queries, keys and values of x, each [B, heads, L, head_dim]."""
        return self.attn.project(self.norm1(x), rope)

    def finish(
        self, x: torch.Tensor, attention_out: torch.Tensor, query_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The rest of the block: attention_out [B, L or Q, dim] (projected) joins the residual, then the MLP."""
        residual = x if query_index is None else x[:, query_index]
        x = residual + self.ls1(attention_out)
        return x + self.ls2(self.mlp(self.norm2(x)))
