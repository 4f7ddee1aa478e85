"""Self-supervised consistency fine-tuning on unlabeled sequences.

Each step takes a window of consecutive frames, warps every frame's predicted albedo, roughness,
metallic and shading to its next neighbour's pixels and penalises the differences (all four are
view-independent in a static scene: diffuse shading does not depend on the viewer), plus an anchor
loss tying frame 0's maps to those of a frozen copy of the starting model on the same window, so
that the easy way out (constant maps) stays closed.

Correspondences come from real depth + poses (geometric reprojection, for robot / RGB-D data) or
from DIS optical flow (plain video); both are computed once per neighbour pair at network size.
Sequences are image folders, 7-Scenes folders or rosbags (read by the offline bag reader, with
poses from the bag's own tf), so a robot's recording fine-tunes the model it runs.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mvinverse_ros.datasets.images import image_paths, read_rgb
from mvinverse_ros.datasets.rgbd import load_rgbd_frames
from mvinverse_ros.geometry.correspondence import Correspondence, optical_flow, reprojection
from mvinverse_ros.model import load_model, save_checkpoint
from mvinverse_ros.model.checkpoint import LONG_SIDE_KEY
from mvinverse_ros.params import PerceptionParams, load_params
from mvinverse_ros.train.losses import masked_mse
from mvinverse_ros.train.trainer import LOG_FILE, MODEL_FILE, pick_device
from mvinverse_ros.types import CameraModel, Frame

CONSISTENT_KEYS = ("albedo", "roughness", "metallic", "shading")


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
    images = []
    for path in image_paths(folder)[:limit]:
        rgb = read_rgb(path)
        if rgb is None:
            raise FileNotFoundError(f"cannot read image {path}")
        images.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
    if len(images) < 2:
        raise FileNotFoundError(f"need at least 2 images in {folder}, found {len(images)}")
    return Sequence(images)


def is_bag(source: str | Path) -> bool:
    """A single .mcap file or a rosbag2 directory (it holds metadata.yaml)."""
    path = Path(source)
    return path.suffix == ".mcap" if path.is_file() else (path / "metadata.yaml").is_file()


def resized_frame(frame: Frame, size: tuple[int, int]) -> Frame:
    """The frame at network size=(w, h); nearest-neighbour depth so that no depth blends across edges."""
    return dataclasses.replace(
        frame, image=cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA),
        depth=None if frame.depth is None else cv2.resize(frame.depth, size, interpolation=cv2.INTER_NEAREST),
        camera=None if frame.camera is None else frame.camera.resized(*size))


def sequence_from_frames(frames: list[Frame]) -> Sequence:
    """Depth, cameras and poses only when every frame has all three (reprojection needs both ends)."""
    images = [f.image for f in frames]
    if not all(f.depth is not None and f.camera is not None and f.camera_to_fixed is not None for f in frames):
        return Sequence(images)
    return Sequence(images, [f.depth for f in frames], [f.camera for f in frames], [f.camera_to_fixed for f in frames])


def load_bag_sequence(bag_path: str | Path, size: tuple[int, int], limit: int | None = None,
                      params: PerceptionParams | None = None) -> Sequence:
    """The first configured camera's synchronized frames of a rosbag, resized to size=(w, h).

    Topics, pairing slop and the fixed frame of the poses come from `params` (defaults if None).

    Raises:
        BagError: the bag cannot be read or lacks the configured topics.
        FileNotFoundError: fewer than 2 frames.
    """
    from mvinverse_ros.bag.frames import iter_frames

    params = params or load_params()
    camera = params.inputs.cameras[0]
    frames = []
    for frame in iter_frames(bag_path, params):
        if frame.source == camera:
            frames.append(resized_frame(frame, size))  # full-size frames go at once: bags can be long
        if limit is not None and len(frames) >= limit:
            break
    if len(frames) < 2:
        raise FileNotFoundError(f"need at least 2 frames of camera {camera!r} in bag {bag_path}, found {len(frames)}")
    return sequence_from_frames(frames)


def load_sequence(source: str | Path, size: tuple[int, int], limit: int | None = None,
                  params: PerceptionParams | None = None) -> Sequence:
    """A rosbag (see load_bag_sequence), a 7-Scenes folder (with depth and poses) or a plain image folder."""
    if is_bag(source):
        return load_bag_sequence(source, size, limit, params)
    if any(Path(source).glob("frame-*.color.*")):
        images, depths, cameras, poses = load_rgbd_frames(source, size, limit)
        return Sequence(images, depths, cameras, poses)
    return load_image_folder(source, size, limit)


def correspondence_method(sequence: Sequence, method: str) -> str:
    """'depth' or 'flow': what `method` ('auto' | 'depth' | 'flow') means for this sequence.

    Raises:
        ValueError: 'depth' asked of a sequence without depth, cameras and poses, or an unknown method.
    """
    if method not in ("auto", "depth", "flow"):
        raise ValueError(f"correspondence must be auto, depth or flow, got {method!r}")
    if method == "depth" and sequence.depths is None:
        raise ValueError("correspondence 'depth' needs depth, camera_info and poses on every frame "
                         "(a 7-Scenes folder, or a bag with registered depth and tf to the fixed frame)")
    if method == "auto":
        return "flow" if sequence.depths is None else "depth"
    return method


def neighbour_correspondences(sequence: Sequence, method: str) -> list[Correspondence]:
    """Correspondence from frame k to frame k + 1 for every k."""
    use_depth = correspondence_method(sequence, method) == "depth"
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
             size: tuple[int, int], limit: int | None = None, log: Callable[[str], None] = print,
             params: PerceptionParams | None = None) -> list[dict]:
    """Fine-tune `checkpoint` for consistency on the sequence at `source`; writes out_dir/last.safetensors.

    Args:
        source: image folder, 7-Scenes folder or rosbag (directory or .mcap).
        checkpoint: starting weights ("" = bundled default).
        out_dir: output folder.
        config: the run's knobs.
        size: network input (w, h).
        limit: use only the first `limit` frames.
        log: progress lines go here.
        params: for a bag, its topics and fixed frame (defaults if None).

    Returns:
        One record per step: loss, its warp and anchor parts, the correspondence method.

    Raises:
        FileNotFoundError / ValueError: unreadable source, too short for a window, bad method.
        BagError: an unreadable bag or one without the configured topics.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sequence = load_sequence(source, size, limit, params)
    if len(sequence.images) < config.window:
        raise ValueError(f"{source} has {len(sequence.images)} frames, fewer than a window of {config.window}")
    method = correspondence_method(sequence, config.correspondence)
    pairs = neighbour_correspondences(sequence, method)
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
    log(f"fine-tuning {loaded.source} on {len(sequence.images)} frames of {source} ({method} correspondences)")
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
        record = {"step": step, "loss": float(loss.detach()), "seconds": round(time.time() - started, 1), **parts,
                  "correspondence": method}
        history.append(record)
        with open(out / LOG_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        log(f"step {step} loss {record['loss']:.5f} (warp {parts['warp']:.5f}, anchor {parts['anchor']:.5f})")
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(model, out / MODEL_FILE, loaded.preset,
                            {"step": step, "kind": "consistency", "started_from": loaded.source,
                             LONG_SIDE_KEY: str(max(size))})
    return history
