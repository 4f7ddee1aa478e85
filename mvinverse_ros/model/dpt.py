"""DPT dense-prediction head reading four decoder token pairs (optionally fusing ResNeXt detail).

Layout and numerics follow the official MVInverse heads (Depth-Anything/VGGT-style DPT):
per read pair LayerNorm -> 1x1 projection -> resize to 4x, 2x, 1x, 1/2x of the patch grid;
(detail fusion: += 1x1 conv of the matching ResNeXt stage); 3x3 convs to `features` channels;
RefineNet fusion coarse -> fine with align_corners=True bilinear upsampling; output convs.
The head returns logits; the activation belongs to the caller.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ResidualConvUnit(nn.Module):
    """relu -> conv1 -> relu -> conv2, plus the skip.

    The reference applies an in-place ReLU to the unit's input, so the skip adds relu(x), not x.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FusionBlock(nn.Module):
    """(coarse + unit1(skip)) -> unit2 -> upsample to `size` (x2 when None) -> 1x1 conv."""

    def __init__(self, features: int, has_skip: bool) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features) if has_skip else None
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        x = _upsample(x, tuple(size) if size is not None else (x.shape[-2] * 2, x.shape[-1] * 2))
        return self.out_conv(x)


class Scratch(nn.Module):
    """Container giving the fusion layers their reference names (`scratch.*`)."""

    def __init__(self, level_channels: list[int], features: int, out_features: int, output_dim: int) -> None:
        super().__init__()
        for level, channels in enumerate(level_channels, start=1):
            setattr(self, f"layer{level}_rn", nn.Conv2d(channels, features, 3, padding=1, bias=False))
        self.refinenet1 = FusionBlock(features, has_skip=True)
        self.refinenet2 = FusionBlock(features, has_skip=True)
        self.refinenet3 = FusionBlock(features, has_skip=True)
        self.refinenet4 = FusionBlock(features, has_skip=False)
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, out_features, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(out_features, output_dim, 1),
        )


class DPTHead(nn.Module):
    """Four token pairs [F, P, dim_in] on a (h, w) grid -> logits [F, output_dim, 14h, 14w].

    Args:
        dim_in: channels of a decoder pair (2 x decoder dim).
        output_dim: channels predicted.
        level_channels: channels of the four pyramid levels (reference: 256, 512, 1024, 1024).
        features: fusion width (reference: 256).
        out_features: width before the last 1x1 conv (reference: 32).
        detail_channels: channels of the four ResNeXt stages to fuse, or None for a plain head.
        patch_size: output pixels per patch.
    """

    def __init__(
        self,
        dim_in: int,
        output_dim: int,
        level_channels: list[int],
        features: int,
        out_features: int,
        detail_channels: list[int] | None = None,
        patch_size: int = 14,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, c, 1) for c in level_channels)
        self.fuse_projects = (
            nn.ModuleList(nn.Conv2d(d, c, 1) for d, c in zip(detail_channels, level_channels))
            if detail_channels is not None
            else None
        )
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(level_channels[0], level_channels[0], 4, stride=4),
                nn.ConvTranspose2d(level_channels[1], level_channels[1], 2, stride=2),
                nn.Identity(),
                nn.Conv2d(level_channels[3], level_channels[3], 3, stride=2, padding=1),
            ]
        )
        self.scratch = Scratch(level_channels, features, out_features, output_dim)

    def forward(
        self, pairs: list[torch.Tensor], grid: tuple[int, int], detail: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """pairs: four [F, h*w, dim_in] patch-token tensors (registers already dropped)."""
        height, width = grid
        levels = []
        for index, tokens in enumerate(pairs):
            x = self.norm(tokens).transpose(1, 2).reshape(tokens.shape[0], -1, height, width)
            x = self.resize_layers[index](self.projects[index](x))
            if self.fuse_projects is not None:
                x = x + self.fuse_projects[index](detail[index])
            levels.append(x)

        scratch = self.scratch
        level1, level2, level3, level4 = (
            getattr(scratch, f"layer{i}_rn")(x) for i, x in enumerate(levels, start=1)
        )
        x = scratch.refinenet4(level4, size=level3.shape[-2:])
        x = scratch.refinenet3(x, level3, size=level2.shape[-2:])
        x = scratch.refinenet2(x, level2, size=level1.shape[-2:])
        x = scratch.refinenet1(x, level1)
        x = scratch.output_conv1(x)
        x = _upsample(x, (height * self.patch_size, width * self.patch_size))
        return scratch.output_conv2(x)
