"""DINOv2-style ViT encoder with register tokens (the frame encoder of MVInverse)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mvinverse_ros.model.layers import Block, PatchEmbed


class VisionTransformer(nn.Module):
    """ViT with a cls token, learned positions on a `pos_grid` x `pos_grid` table, and registers.

    Sequence: [cls + pos[0], registers (no position), patches + interpolated positions]; the
    blocks run, a final LayerNorm is applied and the patch tokens are returned
    (DINOv2's `x_norm_patchtokens`).
    """

    def __init__(
        self,
        patch_size: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        num_registers: int,
        pos_grid: int,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.pos_grid = pos_grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pos_grid * pos_grid, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_registers, dim))
        self.patch_embed = PatchEmbed(patch_size, 3, dim)
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, norm_eps) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def positions(self, grid: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
        """Position table [1, 1 + h*w, dim] for a patch grid (h, w).

        The stored table is used as is for the training grid; otherwise its patch part is resized
        with antialiased bicubic interpolation (in float32) to exactly (h, w); the cls row is kept.
        """
        if tuple(grid) == (self.pos_grid, self.pos_grid):
            return self.pos_embed.to(dtype)
        table = self.pos_embed.float()
        dim = table.shape[-1]
        patch_table = table[:, 1:].reshape(1, self.pos_grid, self.pos_grid, dim).permute(0, 3, 1, 2)
        patch_table = F.interpolate(patch_table, size=tuple(grid), mode="bicubic", antialias=True, align_corners=False)
        patch_table = patch_table.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((table[:, :1], patch_table), dim=1).to(dtype)

    def forward_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised images [F, 3, H, W] (H, W multiples of the patch size) -> normalised tokens.

        Returns `x_norm_clstoken` [F, dim], `x_norm_regtokens` [F, R, dim] and
        `x_norm_patchtokens` [F, h*w, dim].
        """
        frames, _, height, width = images.shape
        grid = (height // self.patch_size, width // self.patch_size)
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(frames, -1, -1).to(x.dtype), x), dim=1)
        x = x + self.positions(grid, x.dtype)
        registers = self.register_tokens.expand(frames, -1, -1).to(x.dtype)
        x = torch.cat((x[:, :1], registers, x[:, 1:]), dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        num_registers = registers.shape[1]
        return {
            "x_norm_clstoken": x[:, 0],
            "x_norm_regtokens": x[:, 1:1 + num_registers],
            "x_norm_patchtokens": x[:, 1 + num_registers:],
        }

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images [F, 3, H, W] -> patch tokens [F, h*w, dim]."""
        return self.forward_features(images)["x_norm_patchtokens"]
