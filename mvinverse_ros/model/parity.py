"""Deterministic synthetic weights for numerical parity with the official implementation.

The parity fixture (shared/parity: manifest.json, inputs.npz, outputs.npz) holds outputs of the
official code run with weights made by the rule below; filling our network the same way and
comparing outputs proves the re-implementation. Each tensor depends only on its name and shape:
seed = crc32(name); first matching rule: running_var 1 + 0.1 U; running_mean 0.1 N;
image_mean/std the ImageNet constants; 1-D `.weight` (norm layers) 1 + 0.1 N; LayerScale gamma
0.1 + 0.02 N; else 0.02 N (>= 2-D) or 0.01 N (1-D); integer buffers zero.
"""
from __future__ import annotations

import functools
import hashlib
import json
import zlib
from pathlib import Path

import torch

from mvinverse_ros.model.checkpoint import model_from_state_dict
from mvinverse_ros.model.mvinverse import IMAGENET_MEAN, IMAGENET_STD, MVInverse

_DTYPES = {"torch.float32": torch.float32, "torch.int64": torch.int64}


def synthetic_tensor(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The fill-rule tensor of one state-dict entry."""
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    if name.endswith("running_var"):
        return 1.0 + 0.1 * torch.rand(shape, generator=g)
    if name.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=g)
    if name.endswith("image_mean"):
        return torch.tensor(IMAGENET_MEAN).view(shape)
    if name.endswith("image_std"):
        return torch.tensor(IMAGENET_STD).view(shape)
    if len(shape) == 1 and name.endswith(".weight"):
        return 1.0 + 0.1 * torch.randn(shape, generator=g)
    if name.endswith("gamma"):
        return 0.1 + 0.02 * torch.randn(shape, generator=g)
    return (0.02 if len(shape) >= 2 else 0.01) * torch.randn(shape, generator=g)


def tensor_sha256(tensor: torch.Tensor) -> str:
    """SHA-256 of the contiguous little-endian bytes (the manifest's `fill_sha256`)."""
    return hashlib.sha256(tensor.contiguous().reshape(-1).view(torch.uint8).numpy()).hexdigest()


def synthetic_state_dict(manifest_path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict in manifest order, SHA-256 of each filled tensor) for a parity manifest."""
    manifest = json.loads(Path(manifest_path).read_text())
    state_dict, hashes = {}, {}
    for entry in manifest["entries"]:
        tensor = synthetic_tensor(entry["name"], tuple(entry["shape"]), _DTYPES[entry["dtype"]])
        state_dict[entry["name"]] = tensor
        hashes[entry["name"]] = tensor_sha256(tensor)
    return state_dict, hashes


@functools.cache
def official_synthetic_model(manifest_path: str) -> tuple[MVInverse, dict[str, str]]:
    """The official-size network with the synthetic weights (eval mode) and the fill hashes.

    Built once per process (about 4 GB), so all parity and checkpoint tests share one copy.
    """
    state_dict, hashes = synthetic_state_dict(manifest_path)
    return model_from_state_dict(state_dict, "official").eval(), hashes
