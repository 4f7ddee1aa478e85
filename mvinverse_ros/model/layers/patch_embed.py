"""Image to patch tokens."""
from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """Non-overlapping `patch_size` convolution; tokens come out row-major over the patch grid."""

    def __init__(self, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[F, 3, H, W] -> [F, (H/p)*(W/p), dim]."""
        return self.proj(images).flatten(2).transpose(1, 2)
