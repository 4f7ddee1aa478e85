"""Two-layer transformer feed-forward network."""
from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """fc1 -> exact (erf) GELU -> fc2, as in ViT/DINOv2."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
