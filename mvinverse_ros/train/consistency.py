"""Self-supervised consistency fine-tuning on unlabeled sequences.

Each step takes a window of consecutive frames, warps every frame's predicted albedo, roughness,
metallic and shading to its next neighbour's pixels and penalises the differences (all four are
view-independent in a static scene: diffuse shading does not depend on the viewer), plus an anchor
loss tying frame 0's maps to those of a frozen copy of the starting model on the same window, so
that the easy way out (constant maps) stays closed.

Correspondences come from real depth + poses (geometric reprojection, for robot / RGB-D data) or
from DIS optical flow (plain video); both are computed once per neighbour pair at network size.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mvinverse_ros.eval.correspondence import Correspondence, optical_flow, reprojection
from mvinverse_ros.model import load_model, save_checkpoint
from mvinverse_ros.train.losses import masked_mse
from mvinverse_ros.train.trainer import LOG_FILE, MODEL_FILE, pick_device
from mvinverse_ros.types import CameraModel

CONSISTENT_KEYS = ("albedo", "roughness", "metallic", "shading")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


@dataclass(frozen=True)
class Sequence:
    """Frames at network size; depth/poses/camera only for RGB-D sequences."""

    images: list[np.ndarray]
    depths: list[np.ndarray] | None = None
    cameras: list[CameraModel] | None = None
    poses: list[np.ndarray] | None = None


@dataclass(frozen=True)
class FinetuneConfig:
    """Knobs of one consistency fine-tuning run.

    Attributes:
        steps: optimizer steps.
        window: consecutive frames per step.
        lr: Adam learning rate (small: this only nudges a trained model).
        anchor_weight: weight of the frame-0 anchor to the frozen starting model.
        correspondence: 'depth' (reprojection), 'flow' (DIS), or 'auto' (depth when available).
        checkpoint_every: steps between checkpoints (and one at the end).
        threads: torch CPU threads (0 = torch default).
        seed: window sampling seed.
    """

    steps: int = 200
    window: int = 3
    lr: float = 2e-5
    anchor_weight: float = 1.0
    correspondence: str = "auto"
    checkpoint_every: int = 25
    threads: int = 0
    seed: int = 0


def load_image_folder(folder: str | Path, size: tuple[int, int], limit: int | None = None) -> Sequence:
    """Images of a folder in name order, resized to size=(w, h).

    Raises:
        FileNotFoundError: no readable images.
    """
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix in IMAGE_SUFFIXES and ".depth." not in p.name)[:limit]
    images = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {path}")
        images.append(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)[..., ::-1].copy())
    if len(images) < 2:
        raise FileNotFoundError(f"need at least 2 images in {folder}, found {len(images)}")
    return Sequence(images)


def load_sequence(source: str | Path, size: tuple[int, int], limit: int | None = None) -> Sequence:
    """A 7-Scenes folder (with depth and poses) or a plain image folder."""
    from mvinverse_ros.eval.suite import load_rgbd_frames

    if any(Path(source).glob("frame-*.color.*")):
        images, depths, cameras, poses = load_rgbd_frames(source, size, limit)
        return Sequence(images, depths, cameras, poses)
    return load_image_folder(source, size, limit)


def neighbour_correspondences(sequence: Sequence, method: str) -> list[Correspondence]:
    """Correspondence from frame k to frame k + 1 for every k."""
    use_depth = method == "depth" or (method == "auto" and sequence.depths is not None)
    if use_depth and sequence.depths is None:
        raise ValueError("correspondence 'depth' needs depth and poses (a 7-Scenes folder)")
    out = []
    for k in range(len(sequence.images) - 1):
        if use_depth:
            out.append(reprojection(sequence.depths[k], sequence.cameras[k], sequence.poses[k],
                                    sequence.depths[k + 1], sequence.cameras[k + 1], sequence.poses[k + 1]))
        else:
            out.append(optical_flow(sequence.images[k], sequence.images[k + 1]))
    return out


def warp_difference(source: torch.Tensor, target: torch.Tensor, corr: Correspondence) -> torch.Tensor:
    """Mean squared difference of `source` [H,W,C] and `target` [H,W,C] at corresponding pixels.

    The target is sampled bilinearly where the source pixels land; gradients flow into both.
    """
    if len(corr) == 0:
        return source.new_zeros(())
    h, w = target.shape[:2]
    grid = torch.stack([torch.as_tensor(corr.u) / (w - 1) * 2 - 1, torch.as_tensor(corr.v) / (h - 1) * 2 - 1], -1)
    grid = grid.to(target.dtype).to(target.device)[None, None]
    sampled = F.grid_sample(target.permute(2, 0, 1)[None], grid, mode="bilinear", align_corners=True)[0, :, 0].T
    picked = source[torch.as_tensor(corr.rows), torch.as_tensor(corr.cols)]
    return ((picked - sampled) ** 2).mean()


def consistency_loss(pred: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor], pairs: list[Correspondence],
                     anchor_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Warp terms over neighbour pairs plus the anchor term on frame 0.

    Args:
        pred: the model's maps for one window, each [N, H, W, C].
        anchor: the frozen model's maps for frame 0, each [H, W, C].
        pairs: correspondence k -> k + 1 for k in 0..N-2.
        anchor_weight: weight of the anchor term.
    """
    warp = sum(warp_difference(pred[key][k], pred[key][k + 1], corr)
               for key in CONSISTENT_KEYS for k, corr in enumerate(pairs)) / max(len(pairs), 1)
    full = torch.ones(pred["albedo"].shape[1:3], dtype=torch.bool, device=pred["albedo"].device)
    anchor_term = sum(masked_mse(pred[key][0], anchor[key], full) for key in anchor)
    total = warp + anchor_weight * anchor_term
    return total, {"warp": float(warp.detach()), "anchor": float(anchor_term.detach())}


def finetune(source: str | Path, checkpoint: str, out_dir: str | Path, config: FinetuneConfig,
             size: tuple[int, int], limit: int | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """Fine-tune `checkpoint` for consistency on the sequence at `source`; writes out_dir/last.safetensors.

    Raises:
        FileNotFoundError / ValueError: unreadable source, too short for a window, bad method.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sequence = load_sequence(source, size, limit)
    if len(sequence.images) < config.window:
        raise ValueError(f"{source} has {len(sequence.images)} frames, fewer than a window of {config.window}")
    pairs = neighbour_correspondences(sequence, config.correspondence)
    loaded = load_model(checkpoint, device=device)
    model = loaded.model.train()
    for module in model.modules():  # keep BatchNorm statistics of the start model: windows are tiny batches
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    frozen = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    images = torch.from_numpy(np.stack(sequence.images)).permute(0, 3, 1, 2).float().div(255)
    rng = np.random.default_rng(config.seed)
    history = []
    started = time.time()
    log(f"fine-tuning {loaded.source} on {len(sequence.images)} frames of {source} "
        f"({'depth' if sequence.depths is not None and config.correspondence != 'flow' else 'flow'} correspondences)")
    for step in range(1, config.steps + 1):
        start = int(rng.integers(len(sequence.images) - config.window + 1))
        window = images[start:start + config.window].to(device)
        with torch.no_grad():
            anchor = {k: v[0, 0] for k, v in frozen(window[None]).items()}
        pred = {k: v[0] for k, v in model(window[None]).items()}
        loss, parts = consistency_loss(pred, anchor, pairs[start:start + config.window - 1], config.anchor_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        record = {"step": step, "loss": float(loss.detach()), "seconds": round(time.time() - started, 1), **parts}
        history.append(record)
        with open(out / LOG_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        log(f"step {step} loss {record['loss']:.5f} (warp {parts['warp']:.5f}, anchor {parts['anchor']:.5f})")
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(model, out / MODEL_FILE, loaded.preset,
                            {"step": step, "kind": "consistency", "started_from": loaded.source})
    return history
