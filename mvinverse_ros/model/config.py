"""Architecture sizes and the named presets. Every preset builds the same module code."""
from __future__ import annotations

from dataclasses import dataclass

from mvinverse_ros.model.errors import ModelError


@dataclass(frozen=True)
class ResNeXtConfig:
    stem_width: int
    planes: tuple[int, int, int, int]
    blocks: tuple[int, int, int, int]
    groups: int
    width_per_group: int


@dataclass(frozen=True)
class MVInverseConfig:
    """Sizes of one MVInverse network; `detail=None` means no ResNeXt branch."""

    dim: int                         # encoder and decoder width (tokens pass straight through)
    encoder_depth: int
    encoder_heads: int
    encoder_registers: int
    pos_grid: int                    # side of the encoder's stored position table
    decoder_depth: int               # even: alternating frame / global blocks
    decoder_heads: int
    decoder_registers: int
    mlp_ratio: float
    head_levels: tuple[int, int, int, int]
    head_features: int
    head_out_features: int
    read_pairs: tuple[int, int, int, int]   # decoder pairs the heads read
    detail: ResNeXtConfig | None
    patch_size: int = 14
    rope_base: float = 100.0


def official() -> MVInverseConfig:
    """The published MVInverse: DINOv2 ViT-L/14-reg, 36 decoder blocks, ResNeXt-101 32x8d."""
    return MVInverseConfig(
        dim=1024, encoder_depth=24, encoder_heads=16, encoder_registers=4, pos_grid=37,
        decoder_depth=36, decoder_heads=16, decoder_registers=5, mlp_ratio=4.0,
        head_levels=(256, 512, 1024, 1024), head_features=256, head_out_features=32, read_pairs=(3, 8, 13, 17),
        detail=ResNeXtConfig(stem_width=64, planes=(64, 128, 256, 512), blocks=(3, 4, 23, 3), groups=32,
                             width_per_group=8),
    )


def small() -> MVInverseConfig:
    """A few million parameters: interactive on a CPU, every part of the official network kept."""
    return MVInverseConfig(
        dim=128, encoder_depth=4, encoder_heads=2, encoder_registers=4, pos_grid=37,
        decoder_depth=8, decoder_heads=2, decoder_registers=5, mlp_ratio=4.0,
        head_levels=(32, 64, 128, 128), head_features=32, head_out_features=16, read_pairs=(0, 1, 2, 3),
        detail=ResNeXtConfig(stem_width=16, planes=(16, 32, 64, 128), blocks=(1, 1, 1, 1), groups=8,
                             width_per_group=8),
    )


def tiny() -> MVInverseConfig:
    """Well under a million parameters, for training tests in CI."""
    return MVInverseConfig(
        dim=48, encoder_depth=2, encoder_heads=1, encoder_registers=2, pos_grid=16,
        decoder_depth=8, decoder_heads=1, decoder_registers=5, mlp_ratio=2.0,
        head_levels=(16, 32, 48, 48), head_features=16, head_out_features=8, read_pairs=(0, 1, 2, 3),
        detail=ResNeXtConfig(stem_width=8, planes=(8, 16, 24, 32), blocks=(1, 1, 1, 1), groups=4,
                             width_per_group=16),
    )


PRESETS = {"official": official, "small": small, "tiny": tiny}


def preset_config(name: str) -> MVInverseConfig:
    """Sizes of a named preset.

    Raises:
        ModelError: unknown preset name.
    """
    if name not in PRESETS:
        raise ModelError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
