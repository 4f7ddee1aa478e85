"""Per-channel residual scaling (CaiT-style LayerScale)."""
from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """Multiplies a residual branch by a learned per-channel `gamma` so deep stacks start near identity."""

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
