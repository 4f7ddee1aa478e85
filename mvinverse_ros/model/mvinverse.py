"""MVInverse, the multi-view inverse rendering network, split into per-frame, per-window and per-output stages.

DINOv2 encoder, ResNeXt detail branch and decoder block 0 (frame attention) per frame; the other
alternating frame/global attention blocks per window; five DPT heads per output frame.

forward(images) == run_heads(decode(encode_frames(images))) exactly, and decode ==
decode_rest(decode_start(...)), so the streaming engine can cache the per-frame work, decode only
the frames it publishes through the last global block, and still reproduce the one-shot model.
Block 1, the first global block, reads block 0's per-frame output: `first_global_inputs` gives
its per-frame queries/keys/values, so a stream can assemble its attention from cached frame pairs
(see layers.partial_attention) and hand it to `decode_rest`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mvinverse_ros.model.config import MVInverseConfig, preset_config
from mvinverse_ros.model.dpt import DPTHead
from mvinverse_ros.model.errors import ModelError
from mvinverse_ros.model.layers import Block, RotaryTable
from mvinverse_ros.model.resnext import ResNeXt
from mvinverse_ros.model.vit import VisionTransformer

# Output name -> (channels, activation, fuses ResNeXt detail). Order = reference state-dict order.
HEADS = {
    "albedo": (3, "sigmoid", True),
    "metallic": (1, "sigmoid", False),
    "roughness": (1, "sigmoid", False),
    "normal": (3, "tanh", False),
    "shading": (3, "sigmoid", True),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class EncodedFrames:
    """Per-frame encoder outputs, independent of the other frames of a window (cacheable).

    tokens: [F, P, C] normalised DINOv2 patch tokens; detail: the four ResNeXt stage maps
    [F, ...] (empty without a detail branch); patch_grid: (h, w); image_hw: (H, W) = 14 * grid.
    """

    tokens: torch.Tensor
    detail: list[torch.Tensor]
    patch_grid: tuple[int, int]
    image_hw: tuple[int, int]

    def index(self, selection) -> "EncodedFrames":
        """Frames picked by an int, slice, list or index tensor (the frame axis is kept)."""
        if isinstance(selection, int):
            selection = [selection]
        return EncodedFrames(
            self.tokens[selection], [d[selection] for d in self.detail], self.patch_grid, self.image_hw
        )

    @staticmethod
    def cat(parts: list["EncodedFrames"]) -> "EncodedFrames":
        """Stack frames encoded separately at the same size.

        Raises:
            ModelError: no parts, or parts encoded at different image sizes.
        """
        if not parts:
            raise ModelError("EncodedFrames.cat needs at least one part")
        sizes = {part.image_hw for part in parts}
        if len(sizes) != 1:
            raise ModelError(f"cannot stack frames encoded at different sizes {sorted(sizes)}")
        detail = [torch.cat(stage, dim=0) for stage in zip(*(part.detail for part in parts))]
        return EncodedFrames(
            torch.cat([part.tokens for part in parts], dim=0), detail, parts[0].patch_grid, parts[0].image_hw
        )


class MVInverse(nn.Module):
    """The network; parameter names equal the official checkpoint's."""

    def __init__(self, config: MVInverseConfig) -> None:
        super().__init__()
        if config.decoder_depth % 2:
            raise ModelError(f"decoder depth must be even (frame/global pairs), got {config.decoder_depth}")
        self.config = config
        self.register_token = nn.Parameter(torch.zeros(1, 1, config.decoder_registers, config.dim))
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.encoder = VisionTransformer(
            config.patch_size, config.dim, config.encoder_depth, config.encoder_heads, config.mlp_ratio,
            config.encoder_registers, config.pos_grid,
        )
        detail = config.detail
        self.res_encoder = (
            ResNeXt(detail.stem_width, detail.planes, detail.blocks, detail.groups, detail.width_per_group)
            if detail is not None
            else None
        )
        self.decoder = nn.ModuleList(
            Block(config.dim, config.decoder_heads, config.mlp_ratio, norm_eps=1e-6, qk_norm=True)
            for _ in range(config.decoder_depth)
        )
        detail_channels = list(self.res_encoder.out_channels) if self.res_encoder is not None else None
        for name, (channels, _, fuses_detail) in HEADS.items():
            head = DPTHead(
                2 * config.dim, channels, list(config.head_levels), config.head_features, config.head_out_features,
                detail_channels if fuses_detail else None, config.patch_size,
            )
            self.add_module(f"{name}_head", head)
        self.rope = RotaryTable(config.rope_base)

    # ---- per frame ---------------------------------------------------------------------------
    def encode_frames(self, images: torch.Tensor) -> EncodedFrames:
        """Images [F, 3, H, W] in [0, 1], H and W multiples of the patch size -> EncodedFrames.

        Raises:
            ModelError: wrong rank/channels or a side that is not a multiple of the patch size.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ModelError(f"encode_frames expects [F, 3, H, W] images, got shape {tuple(images.shape)}")
        height, width = images.shape[-2:]
        patch = self.config.patch_size
        if height % patch or width % patch:
            raise ModelError(f"image size {height}x{width} is not a multiple of the patch size {patch}")
        normalised = (images - self.image_mean) / self.image_std
        tokens = self.encoder(normalised)
        detail = []
        if self.res_encoder is not None:
            # Stages at 4x, 2x, 1x and 1/2x the patch grid: resize to 8/7 of the image first.
            resized = F.interpolate(
                normalised, size=(height // 7 * 8, width // 7 * 8), mode="bilinear", align_corners=False
            )
            detail = self.res_encoder(resized)
        return EncodedFrames(tokens, detail, (height // patch, width // patch), (height, width))

    # ---- per window --------------------------------------------------------------------------
    def decode(
        self,
        tokens: torch.Tensor,
        patch_grid: tuple[int, int],
        all_pairs: bool = False,
        output_frames: list[int] | None = None,
    ) -> list[torch.Tensor]:
        """Alternating frame/global attention over a window: decode_rest(decode_start(tokens)).

        Args:
            tokens: [B, N, P, C] encoder patch tokens of N frames per window.
            patch_grid: (h, w) with h * w = P.
            all_pairs: return every (frame block, global block) pair instead of the ones the
                heads read (for testing).
            output_frames: see `decode_rest`.

        Returns:
            Pairs [B, N, R + P, 2C] (R register tokens first; N = len(output_frames) if given): the
            `read_pairs` ones, or all.
        """
        return self.decode_rest(self.decode_start(tokens, patch_grid), patch_grid, all_pairs, output_frames)

    def decode_start(self, tokens: torch.Tensor, patch_grid: tuple[int, int]) -> torch.Tensor:
        """Registers + decoder block 0, which attends within one frame: [..., P, C] -> [..., R + P, C].

        Depends on each frame alone, so a stream can compute it once per frame and cache it.
        """
        *lead, num_patches, dim = tokens.shape
        registers = self.register_token[0, 0].to(tokens.dtype).expand(*lead, -1, -1)
        x = torch.cat((registers, tokens), dim=-2).reshape(-1, registers.shape[-2] + num_patches, dim)
        x = self.decoder[0](x, rope=self._frame_rope(patch_grid, x))
        return x.reshape(*lead, *x.shape[1:])

    def first_global_inputs(
        self, started: torch.Tensor, patch_grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Block 1's queries, keys and values of each frame of `decode_start`'s output [..., R + P, C].

        Each is [..., heads, R + P, head_dim]; they depend on their frame alone (RoPE positions
        restart in every frame), so a stream computes them once per frame.
        """
        *lead, per_frame, dim = started.shape
        x = started.reshape(-1, per_frame, dim)
        projected = self.decoder[1].attention_inputs(x, rope=self._frame_rope(patch_grid, x))
        return tuple(t.reshape(*lead, *t.shape[1:]) for t in projected)

    def decode_rest(
        self,
        started: torch.Tensor,
        patch_grid: tuple[int, int],
        all_pairs: bool = False,
        output_frames: list[int] | torch.Tensor | None = None,
        first_attention: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """The decoder after block 0, on `decode_start`'s output [B, N, R + P, C].

        Stops after the last pair the heads read (unless all_pairs). With output_frames, returns
        the pairs of those frames only, [B, len(output_frames), R + P, 2C]; the last global block
        then computes just their tokens (all frames' tokens still serve as its keys and values),
        the only place where the other frames' outputs are needed by nothing later.
        first_attention: block 1's attention result (before its output projection) for every
        frame, [B, N, heads, R + P, head_dim], computed by the caller from `first_global_inputs`;
        block 1 then skips its own attention.
        """
        batch, frames, per_frame, dim = started.shape
        frame_rope = self._frame_rope(patch_grid, started)
        window_rope = (frame_rope[0].repeat(frames, 1), frame_rope[1].repeat(frames, 1))  # same in every frame
        count = len(self.decoder) // 2 if all_pairs else max(self.config.read_pairs) + 1
        # A tensor of frame indices (not a list) keeps the published count symbolic in an ONNX export.
        selected = slice(None) if output_frames is None else torch.as_tensor(output_frames, device=started.device)
        query_index = None
        if output_frames is not None:
            query_index = (selected[:, None] * per_frame + torch.arange(per_frame, device=started.device)).flatten()

        pairs, x = {}, started
        for pair in range(count):
            if pair:
                x = self.decoder[2 * pair](x.reshape(batch * frames, per_frame, dim), rope=frame_rope)
            frame_out = x.reshape(batch, frames, per_frame, dim)
            last = pair == count - 1
            global_block, window_tokens = self.decoder[2 * pair + 1], frame_out.reshape(batch, frames * per_frame, dim)
            if pair == 0 and first_attention is not None:
                attended = first_attention.transpose(1, 2).flatten(2, 3)  # [B, heads, N * (R + P), head_dim]
                if last and query_index is not None:
                    attended = attended[:, :, query_index]
                x = global_block.finish(
                    window_tokens, global_block.attn.output(attended), query_index if last else None
                )
            else:
                x = global_block(window_tokens, rope=window_rope, query_index=query_index if last else None)
            x = x.reshape(batch, -1, per_frame, dim)
            if all_pairs or pair in self.config.read_pairs:
                pairs[pair] = torch.cat((frame_out[:, selected], x if last else x[:, selected]), dim=-1)
        return list(pairs.values()) if all_pairs else [pairs[i] for i in self.config.read_pairs]

    def _frame_rope(self, patch_grid: tuple[int, int], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE tables (cos, sin) for the tokens of one frame, [R + P, head_dim] each."""
        head_dim = self.config.dim // self.config.decoder_heads
        return self.rope(tuple(patch_grid), self.config.decoder_registers, head_dim, like.device, like.dtype)

    # ---- per output frame --------------------------------------------------------------------
    def run_heads(
        self,
        pairs: list[torch.Tensor],
        detail: list[torch.Tensor],
        image_hw: tuple[int, int],
        return_logits: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Decoder pairs of some frames -> material maps of those frames.

        Args:
            pairs: the four read pairs, each [F, R + P, 2C] (frames flattened).
            detail: the four ResNeXt maps of the same frames (empty without a detail branch).
            image_hw: (H, W) of the encoded images.
            return_logits: also return `<name>_logits` [F, C, H, W] (before activation).

        Returns:
            albedo/metallic/roughness/normal/shading, each [F, H, W, C]; normal is unit length.
        """
        patch = self.config.patch_size
        grid = (image_hw[0] // patch, image_hw[1] // patch)
        patch_tokens = [pair[:, self.config.decoder_registers:] for pair in pairs]
        outputs: dict[str, torch.Tensor] = {}
        for name, (_, activation, fuses_detail) in HEADS.items():
            head = getattr(self, f"{name}_head")
            logits = head(patch_tokens, grid, detail if fuses_detail and detail else None)
            if return_logits:
                outputs[f"{name}_logits"] = logits
            values = torch.sigmoid(logits) if activation == "sigmoid" else torch.tanh(logits)
            if name == "normal":
                # F.normalize's norm kernel takes ~50 ms per 476x630 frame on a strided channel axis
                # (CPU); the explicit sum of squares is the same unit vector in under 1 ms.
                values = values / values.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-8)
            outputs[name] = values.permute(0, 2, 3, 1)
        return outputs

    def forward(self, images: torch.Tensor, return_logits: bool = False) -> dict[str, torch.Tensor]:
        """Images [B, N, 3, H, W] in [0, 1] -> maps [B, N, H, W, C] (logits [B, N, C, H, W] if asked).

        Raises:
            ModelError: wrong rank or a side that is not a multiple of the patch size.
        """
        if images.ndim != 5:
            raise ModelError(f"forward expects [B, N, 3, H, W] images, got shape {tuple(images.shape)}")
        batch, frames = images.shape[:2]
        encoded = self.encode_frames(images.flatten(0, 1))
        tokens = encoded.tokens.reshape(batch, frames, *encoded.tokens.shape[1:])
        pairs = self.decode(tokens, encoded.patch_grid)
        outputs = self.run_heads([pair.flatten(0, 1) for pair in pairs], encoded.detail, encoded.image_hw,
                                 return_logits=return_logits)
        return {name: value.reshape(batch, frames, *value.shape[1:]) for name, value in outputs.items()}


def build_model(preset: str = "official") -> MVInverse:
    """A freshly initialised network of a named preset ("official", "small", "tiny").

    Raises:
        ModelError: unknown preset.
    """
    return MVInverse(preset_config(preset))
