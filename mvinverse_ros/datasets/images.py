"""Image folders: the one reader of plain photographs for `infer` and consistency fine-tuning."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.images import check_size, encoded_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def image_paths(folder: str | Path) -> list[Path]:
    """Colour images of a folder in name order (7-Scenes' `*.depth.png` files are not colour)."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and ".depth." not in p.name)


def read_rgb(path: str | Path, max_pixels: int | None = None) -> np.ndarray | None:
    """HxWx3 uint8 RGB, or None when the file is not a decodable image.

    Raises:
        ConversionError: the header declares more than `max_pixels` pixels (checked before decoding).
    """
    if max_pixels is not None:
        try:
            width, height = encoded_size(path)
        except ConversionError:
            return None  # no image header: not decodable either
        check_size(width, height, max_pixels, str(path))
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
