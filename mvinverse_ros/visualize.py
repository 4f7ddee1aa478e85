"""Material maps as 8-bit RGB pictures, and a labelled contact sheet of many frames.

The same pictures go to image topics, PNG files and the contact sheet, so a map looks the same
wherever a person inspects it. Normals use the usual n * 0.5 + 0.5 colouring.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mvinverse_ros.types import MAP_NAMES, MaterialMaps

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer function: encoded values in [0, 1] to linear light."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """sRGB transfer function on values clipped to [0, 1]."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def unit_to_uint8(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) -> uint8 0..255, clipped and rounded."""
    return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def normal_to_rgb8(normal: np.ndarray) -> np.ndarray:
    """HxWx3 unit normals -> HxWx3 uint8 via n * 0.5 + 0.5."""
    return unit_to_uint8(normal * 0.5 + 0.5)


def grey_to_rgb8(values: np.ndarray) -> np.ndarray:
    """HxW values in [0, 1] -> HxWx3 uint8 grey."""
    return np.repeat(unit_to_uint8(values)[..., None], 3, axis=2)


def map_to_rgb8(name: str, maps: MaterialMaps) -> np.ndarray:
    """One map of `maps` by name as an HxWx3 uint8 picture.

    Raises:
        KeyError: for a name not in MAP_NAMES.
    """
    if name not in MAP_NAMES:
        raise KeyError(f"unknown map {name!r}; maps are {', '.join(MAP_NAMES)}")
    values = getattr(maps, name)
    if name == "normal":
        return normal_to_rgb8(values)
    if values.ndim == 2:
        return grey_to_rgb8(values)
    return unit_to_uint8(values)


MAX_TILE_ASPECT = 4  # a tile is at most this many times taller than wide, whatever the image's shape


def tile_height(shape: tuple[int, ...], tile_width: int) -> int:
    """Height of a `tile_width`-wide tile of an image of `shape`, capped so a sliver cannot fill memory."""
    return min(max(1, int(round(shape[0] * tile_width / shape[1]))), MAX_TILE_ASPECT * tile_width)


def _put_label(tile: np.ndarray, text: str) -> None:
    """Write `text` in the tile's top-left corner on a dark band so it reads on any content."""
    scale = max(0.35, tile.shape[1] / 500.0)
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    cv2.rectangle(tile, (0, 0), (min(tile.shape[1], width + 6), height + baseline + 6), (0, 0, 0), thickness=-1)
    cv2.putText(tile, text, (3, height + 3), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def contact_sheet(
    rows: Sequence[tuple[str, np.ndarray, MaterialMaps]], tile_width: int = 192, maps: Sequence[str] = MAP_NAMES
) -> np.ndarray:
    """A grid of frames (rows) x [input, maps...] (columns), labelled, as one HxWx3 uint8 RGB image.

    Args:
        rows: (label, input RGB uint8 image, its maps) per frame, top to bottom.
        tile_width: width of each tile in pixels; heights follow each frame's aspect, up to
            MAX_TILE_ASPECT times the width (a taller image is squeezed).
        maps: which maps to show, in column order.

    Raises:
        ValueError: for no rows.
    """
    if not rows:
        raise ValueError("contact_sheet needs at least one row")
    sheet_rows = []
    for label, image, frame_maps in rows:
        height = tile_height(image.shape, tile_width)
        pictures = [("input", np.asarray(image, np.uint8))] + [(name, map_to_rgb8(name, frame_maps)) for name in maps]
        tiles = []
        for column, (name, picture) in enumerate(pictures):
            tile = np.ascontiguousarray(cv2.resize(picture, (tile_width, height), interpolation=cv2.INTER_AREA))
            _put_label(tile, label if column == 0 else name)
            tiles.append(tile)
        sheet_rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(sheet_rows, axis=0)
