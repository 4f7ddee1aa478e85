"""The node's ImageDecoder: cv_bridge decodes the rclpy Image and CompressedImage messages."""
from __future__ import annotations

from typing import Any

import numpy as np
from cv_bridge import CvBridge, CvBridgeError

from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import MessageFactory


class CvBridgeImageDecoder:
    """cv_bridge's 'passthrough' conversions (no colour conversion: the package's policy does that).

    Args:
        factory: the node's RclpyMessageFactory (builds packed copies of row-padded Images).
    """

    def __init__(self, factory: MessageFactory) -> None:
        self.factory = factory
        self._bridge = CvBridge()

    def raw(self, msg: Any) -> np.ndarray:
        try:
            return self._bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
        except CvBridgeError as err:
            raise ConversionError(f"cv_bridge: {err}") from None

    def compressed(self, msg: Any) -> np.ndarray:
        try:
            pixels = self._bridge.compressed_imgmsg_to_cv2(msg, desired_encoding="passthrough")
        except CvBridgeError as err:
            raise ConversionError(f"cv_bridge: {err}") from None
        if pixels is None:
            raise ConversionError("OpenCV could not decode the data")
        return pixels
