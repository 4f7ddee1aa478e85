"""ResNeXt detail branch (torchvision ResNeXt layout) feeding the albedo and shading heads.

Parameter names follow the official MVInverse packing: `layer1` = stem conv (`layer1.0`), stem BN
(`layer1.1`), ReLU, max-pool and the first stage's bottlenecks (`layer1.4`); `layer2..4` are
the other stages.
"""
from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
    """1x1 reduce -> grouped 3x3 (carries the stride) -> 1x1 expand (x4), BN after each, residual."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, groups: int, width_per_group: int) -> None:
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _stage(in_channels: int, planes: int, blocks: int, stride: int, groups: int, width_per_group: int) -> nn.Sequential:
    layers = [Bottleneck(in_channels, planes, stride, groups, width_per_group)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes, 1, groups, width_per_group) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNeXt(nn.Module):
    """Four stages at strides 4, 8, 16, 32 of the input; returns all four feature maps."""

    def __init__(
        self, stem_width: int, planes: tuple[int, ...], blocks: tuple[int, ...], groups: int, width_per_group: int
    ) -> None:
        super().__init__()
        channels = [p * Bottleneck.expansion for p in planes]
        self.out_channels = tuple(channels)
        self.layer1 = nn.Sequential(
            nn.Conv2d(3, stem_width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
            _stage(stem_width, planes[0], blocks[0], 1, groups, width_per_group),
        )
        self.layer2 = _stage(channels[0], planes[1], blocks[1], 2, groups, width_per_group)
        self.layer3 = _stage(channels[1], planes[2], blocks[2], 2, groups, width_per_group)
        self.layer4 = _stage(channels[2], planes[3], blocks[3], 2, groups, width_per_group)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features
