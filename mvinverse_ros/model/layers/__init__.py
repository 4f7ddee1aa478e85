"""Transformer building blocks shared by the DINOv2 encoder and the alternating-attention decoder."""
from mvinverse_ros.model.layers.attention import Attention
from mvinverse_ros.model.layers.block import Block
from mvinverse_ros.model.layers.layer_scale import LayerScale
from mvinverse_ros.model.layers.mlp import Mlp
from mvinverse_ros.model.layers.partial_attention import attention_partials, merge_partials
from mvinverse_ros.model.layers.patch_embed import PatchEmbed
from mvinverse_ros.model.layers.rope import RotaryTable, apply_rope

__all__ = [
    "Attention", "Block", "LayerScale", "Mlp", "PatchEmbed", "RotaryTable", "apply_rope", "attention_partials",
    "merge_partials",
]
