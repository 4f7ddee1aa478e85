"""One call from RGB images to material maps, for scripts and notebooks.

All frames are seen together in one window (cross-view attention over every image), as the
official inference script does. It runs through the streaming engine so that there is a single
preprocessing and post-processing path for scripts, the CLI, bags and the robot.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mvinverse_ros.engine.preprocess import InferenceError
from mvinverse_ros.engine.streaming import StreamingEngine
from mvinverse_ros.model import LoadedModel, MVInverse
from mvinverse_ros.types import Frame, MaterialMaps, Window

__all__ = ["InferenceError", "predict"]


def predict(
    images: Sequence[np.ndarray],
    model: LoadedModel | MVInverse,
    long_side: int = 0,
    device: str = "cpu",
    dtype: str = "fp32",
    normal_convention: str = "opencv",
) -> list[MaterialMaps]:
    """Material maps for each image, all images in one window.

    Args:
        images: HxWx3 RGB, uint8 (0..255) or float (0..1). Every image is resized to the network
            size of the last one (long side `long_side`, sides multiples of 14).
        model: `load_model(...)`'s result, or a bare MVInverse network.
        long_side: network input long side in pixels (capped at 1024); 0 = the size the weights were
            trained at (known from a LoadedModel; a bare network needs an explicit size): weights
            run away from their trained size lose accuracy (the README's model card measures it).
        device: 'auto' | 'cpu' | 'cuda' | 'cuda:N'.
        dtype: 'fp32' | 'bf16' | 'fp16' (autocast).
        normal_convention: camera frame of the model's normals ('opencv' | 'opengl'); the
            returned normals are always in the REP 103 optical frame.

    Returns:
        One MaterialMaps per image, at that image's own resolution.

    Raises:
        InferenceError: for no images, a bad image, device or dtype, or long_side 0 with a bare network.
    """
    if len(images) == 0:
        raise InferenceError("predict needs at least one image")
    if isinstance(model, LoadedModel):
        model, long_side = model.model, long_side or model.native_long_side
    elif not long_side:
        raise InferenceError("predict: a bare network does not know its trained size; pass long_side or the "
                             "LoadedModel from load_model()")
    frames = tuple(Frame(stamp_ns=i, frame_id="image", image=np.asarray(image)) for i, image in enumerate(images))
    window = Window(window_id=0, frames=frames, publish=tuple(range(len(frames))))
    return list(StreamingEngine(
        model, device=device, dtype=dtype, long_side=long_side, normal_convention=normal_convention
    ).run(window).maps)
