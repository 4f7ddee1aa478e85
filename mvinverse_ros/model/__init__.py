"""The MVInverse network in plain torch, its presets and checkpoint I/O."""
from mvinverse_ros.model.checkpoint import (
    LoadedModel,
    load_model,
    load_official_state_dict,
    save_checkpoint,
)
from mvinverse_ros.model.config import PRESETS, MVInverseConfig, preset_config
from mvinverse_ros.model.errors import ModelError
from mvinverse_ros.model.mvinverse import HEADS, EncodedFrames, MVInverse, build_model

__all__ = [
    "HEADS", "PRESETS", "EncodedFrames", "LoadedModel", "MVInverse", "MVInverseConfig", "ModelError",
    "build_model", "load_model", "load_official_state_dict", "preset_config", "save_checkpoint",
]
