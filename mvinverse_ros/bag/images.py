"""The offline path's ImageDecoder: rosbags-image decodes the bag's Image and CompressedImage messages."""
from __future__ import annotations

from typing import Any

import numpy as np
from rosbags.image import ImageError, compressed_image_to_cvimage, image_to_cvimage

from mvinverse_ros.bag.typestore import RosbagsMessageFactory, typestore_with_project_types
from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import MessageFactory


class RosbagsImageDecoder:
    """rosbags-image's passthrough conversions (no colour conversion: the package's policy does that).

    Args:
        factory: builds packed copies of row-padded Images; a humble typestore's by default.
    """

    def __init__(self, factory: MessageFactory | None = None) -> None:
        self.factory = factory or RosbagsMessageFactory(typestore_with_project_types())

    def raw(self, msg: Any) -> np.ndarray:
        try:
            return image_to_cvimage(msg)
        except ImageError as err:
            raise ConversionError(f"rosbags-image: {err}") from None

    def compressed(self, msg: Any) -> np.ndarray:
        try:
            pixels = compressed_image_to_cvimage(msg)
        except AssertionError:  # rosbags-image asserts that OpenCV decoded an image
            pixels = None
        if pixels is None:
            raise ConversionError("OpenCV could not decode the data")
        return pixels
