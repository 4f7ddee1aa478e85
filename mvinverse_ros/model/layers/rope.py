"""2D rotary position embedding (RoPE) of the decoder.

The head channel is split in two halves: the first is rotated by the token's row position, the
second by its column position. Within each half, channel i pairs with channel i + half/2
("rotate-half" layout, not interleaved). Frequencies are base^(-2j/half), j < half/2.
"""
from __future__ import annotations

import torch


class RotaryTable:
    """cos/sin per token of one frame, cached per patch grid.

    A frame's tokens are `num_prefix` register tokens at position (0, 0) followed by the patch
    grid row-major, patch (y, x) at position (y + 1, x + 1). Computing the tables once per grid
    (not per block and call) keeps RoPE off the profile; angles are formed in float32 and cos/sin
    taken in the token dtype.
    """

    def __init__(self, base: float) -> None:
        self.base = base
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(
        self, grid: tuple[int, int], num_prefix: int, head_dim: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (cos, sin), each [num_prefix + h*w, head_dim]."""
        key = (tuple(grid), num_prefix, head_dim, str(device), dtype)
        if key not in self._cache:
            # Plain constant tensors: usable both under inference_mode and in training afterwards.
            with torch.inference_mode(False), torch.no_grad():
                self._cache[key] = self._tables(grid, num_prefix, head_dim, torch.device(device), dtype)
        return self._cache[key]

    def _tables(
        self, grid: tuple[int, int], num_prefix: int, head_dim: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if head_dim % 4:
            raise ValueError(f"2D RoPE needs a head dimension divisible by 4, got {head_dim}")
        height, width = grid
        rows = torch.arange(height, device=device).repeat_interleave(width) + 1
        cols = torch.arange(width, device=device).repeat(height) + 1
        prefix = torch.zeros(num_prefix, dtype=torch.long, device=device)
        rows, cols = torch.cat((prefix, rows)), torch.cat((prefix, cols))

        half = head_dim // 2
        inv_freq = 1.0 / (self.base ** (torch.arange(0, half, 2, device=device).float() / half))
        coords = torch.arange(max(height, width) + 1, device=device, dtype=torch.float32)
        angles = torch.outer(coords, inv_freq).to(dtype)
        angles = torch.cat((angles, angles), dim=-1)  # [max_pos + 1, half]
        cos, sin = angles.cos(), angles.sin()
        return torch.cat((cos[rows], cos[cols]), dim=-1), torch.cat((sin[rows], sin[cols]), dim=-1)


def apply_rope(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate [..., T, head_dim] by the tables from `RotaryTable` (broadcast over leading axes).

    The tables are cast to the token dtype, so q/k keep theirs under autocast.
    """
    cos, sin = cos.to(t.dtype), sin.to(t.dtype)
    *lead, head_dim = t.shape
    quarters = t.reshape(*lead, 2, 2, head_dim // 4)  # (row|column half, first|second quarter, ...)
    rotated = torch.stack((-quarters[..., 1, :], quarters[..., 0, :]), dim=-2).reshape(t.shape)
    return t * cos + rotated * sin
