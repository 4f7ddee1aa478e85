"""Supervised training on generated scenes, with resumable safetensors checkpoints.

A checkpoint folder holds `last.safetensors` (the model, written by the model package's
`save_checkpoint`, so the preset and step are in its metadata), `last.optim.safetensors` (Adam's
state, param groups in metadata) and `log.jsonl` (one line of loss terms per logged step).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mvinverse_ros.model import build_model, save_checkpoint
from mvinverse_ros.model.checkpoint import LONG_SIDE_KEY
from mvinverse_ros.train.losses import LOGIT_KEYS, material_loss
from mvinverse_ros.datasets.synthetic import SyntheticDataError

MODEL_FILE = "last.safetensors"
OPTIMIZER_FILE = "last.optim.safetensors"
LOG_FILE = "log.jsonl"
ENCODER_MODULES = ("encoder", "res_encoder")  # per-frame feature extractors (DINOv2 / ResNeXt)
SCRATCH_LAYER_SCALE = 0.1
# Gradient norm clip: with Adam at full rate from step 0, early updates killed the roughness head's
# ReLUs (the earlier bundled model's roughness logit was 0.09 at every pixel); warm-up and clipping
# keep the first steps small.
CLIP_NORM = 1.0
FINAL_LR_FRACTION = 0.1


def init_from_scratch(model: torch.nn.Module) -> None:
    """Start LayerScale gammas at 0.1 instead of DINOv2's 1e-5.

    1e-5 suits fine-tuning pretrained blocks; from scratch it leaves every transformer block (and so
    all cross-view attention) silent for hundreds of steps: measured, an untrained model's output for
    a frame changed by < 1e-7 when other frames joined its window.
    """
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(".gamma"):
                parameter.fill_(SCRATCH_LAYER_SCALE)


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of one training run.

    Attributes:
        preset: model preset to build (ignored on resume: the checkpoint's preset wins).
        steps: total optimizer steps (a resumed run continues up to this number).
        batch_size: scenes per step; every scene in a step gets the same number of views.
        min_views, max_views: views per scene are drawn in this range (clipped to what a scene has).
        lr: Adam's peak learning rate (linear warm-up over `lr_warmup` steps, then cosine decay
            to a tenth at `steps`).
        lr_warmup: steps of the learning-rate warm-up.
        albedo_warmup: steps of plain albedo MSE before the scale-invariant albedo loss.
        albedo_anchor: weight of the plain albedo MSE kept beside the scale-invariant one.
        bounded_weight: weight of the metallic and roughness terms, whose cues (highlights, tinted
            reflections) are a few pixels wide against the normal, albedo and shading terms that
            pull the shared trunk. The bundled model used 4 after step 750 (see its model card).
        no_gradient: maps trained without the multi-scale gradient term (see losses.material_loss).
        crop: (width, height) random crop in pixels (multiples of 14), or None for full frames.
        checkpoint_every: steps between checkpoints (and one at the end).
        freeze_encoders: train only the decoder and heads.
        seed: sampling and initialisation seed.
        threads: CPU threads for torch (0 = torch's default). On a shared CPU, 1 avoids OpenMP
            oversubscription, measured 10-30x faster per step than 2 threads under load.
    """

    preset: str = "small"
    steps: int = 1000
    batch_size: int = 1
    min_views: int = 2
    max_views: int = 4
    lr: float = 3e-4
    lr_warmup: int = 300
    albedo_warmup: int = 200
    albedo_anchor: float = 0.1
    bounded_weight: float = 1.0
    no_gradient: tuple[str, ...] = ()
    crop: tuple[int, int] | None = None
    checkpoint_every: int = 25
    freeze_encoders: bool = False
    seed: int = 0
    threads: int = 0


class SceneSampler:
    """Random multi-view samples (with crops and mirror flips) from a folder of generated scenes."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._cache: dict[Path, dict[str, np.ndarray]] = {}
        self.refresh()
        if not self.paths:
            raise SyntheticDataError(f"no scene_*.npz in {folder}; run `mvinverse-ros generate {folder}` first")

    def long_side(self) -> int:
        """The scenes' frame long side: crops keep the pixel scale, so this is the size to run the weights at."""
        return max(self._scene(self.paths[0])["rgb"].shape[1:3])

    def refresh(self) -> None:
        """Pick up scenes written since (a generator may still be filling the folder)."""
        self.paths = sorted(self.folder.glob("scene_*.npz"))

    def _scene(self, path: Path) -> dict[str, np.ndarray]:
        if path not in self._cache:
            try:
                with np.load(path) as data:
                    self._cache[path] = {k: data[k] for k in data.files}
            except (OSError, ValueError) as err:
                raise SyntheticDataError(f"cannot read scene {path}: {err}") from err
        return self._cache[path]

    def sample(self, rng: np.random.Generator, batch_size: int, n_views: int,
               crop: tuple[int, int] | None) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(images [B,N,3,H,W], targets {key: [B*N,H,W,C]}, valid mask [B*N,H,W])."""
        images, targets, masks = [], {k: [] for k in ("albedo", "metallic", "roughness", "shading", "normal")}, []
        for _ in range(batch_size):
            scene = self._scene(self.paths[rng.integers(len(self.paths))])
            total = scene["rgb"].shape[0]
            views = rng.choice(total, size=n_views, replace=total < n_views)
            h, w = scene["rgb"].shape[1:3]
            cw, ch = crop or (w, h)
            x0, y0 = rng.integers(w - cw + 1), rng.integers(h - ch + 1)
            window = (views, slice(y0, y0 + ch), slice(x0, x0 + cw))
            flip = rng.uniform() < 0.5

            def take(key, scale=None):
                x = scene[key][window].astype(np.float32)
                x = x / 255.0 if scene[key].dtype == np.uint8 else x
                x = x[..., None] if x.ndim == 3 else x
                return x[:, :, ::-1] if flip else x

            images.append(take("rgb"))
            for key in targets:
                targets[key].append(take(key))
            if flip:
                targets["normal"][-1] = targets["normal"][-1] * np.array([-1, 1, 1], dtype=np.float32)
            masks.append(take("valid")[..., 0] > 0.5)
        image_t = torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 1, 4, 2, 3).contiguous()
        target_t = {k: torch.from_numpy(np.ascontiguousarray(np.concatenate(v))) for k, v in targets.items()}
        return image_t, target_t, torch.from_numpy(np.ascontiguousarray(np.concatenate(masks)))


def flatten_views(pred: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """[B,N,H,W,C] maps and [B,N,C,H,W] logits -> [B*N,H,W,C]."""
    return {k: (v.flatten(0, 1).permute(0, 2, 3, 1) if k.endswith("_logits") else v.flatten(0, 1))
            for k, v in pred.items() if v.ndim == 5}


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to `config.lr`, then cosine decay to FINAL_LR_FRACTION of it at `config.steps`.

    A function of the step alone, so a resumed run continues the same schedule.
    """
    if step < config.lr_warmup:
        return config.lr * (step + 1) / config.lr_warmup
    progress = min(1.0, (step - config.lr_warmup) / max(1, config.steps - config.lr_warmup))
    return config.lr * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def save_optimizer(optimizer: torch.optim.Optimizer, path: Path, step: int) -> None:
    state = optimizer.state_dict()
    tensors = {f"{idx}.{key}": (value if torch.is_tensor(value) else torch.tensor(value)).contiguous()
               for idx, entry in state["state"].items() for key, value in entry.items()}
    save_file(tensors, str(path), metadata={"param_groups": json.dumps(state["param_groups"]), "step": str(step)})


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    with safe_open(str(path), framework="pt") as handle:
        groups = json.loads(handle.metadata()["param_groups"])
        state: dict[int, dict[str, torch.Tensor]] = {}
        for name in handle.keys():
            idx, key = name.split(".", 1)
            state.setdefault(int(idx), {})[key] = handle.get_tensor(name)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def load_training_state(out_dir: Path, device: torch.device):
    """(model, preset, step, optimizer file) from a checkpoint folder's last.safetensors."""
    path = out_dir / MODEL_FILE
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        state_dict = {k: handle.get_tensor(k) for k in handle.keys()}
    preset = metadata["preset"]
    model = build_model(preset)
    model.load_state_dict(state_dict)
    return model.to(device), preset, int(metadata.get("step", 0))


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(data_dir: str | Path, out_dir: str | Path, config: TrainConfig, resume: bool = False,
          log: Callable[[str], None] = print) -> list[dict]:
    """Train (or resume) and return the logged history (one dict of loss terms per step).

    Raises:
        SyntheticDataError: no or unreadable scenes.
        FileNotFoundError: --resume without a checkpoint in `out_dir`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    if resume:
        if not (out / MODEL_FILE).is_file():
            raise FileNotFoundError(f"--resume: no {MODEL_FILE} in {out}")
        model, preset, step = load_training_state(out, device)
    else:
        model, preset, step = build_model(config.preset), config.preset, 0
        init_from_scratch(model)
        model = model.to(device)
    for name in ENCODER_MODULES if config.freeze_encoders else ():
        module = getattr(model, name, None)
        if module is not None:
            module.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    if resume and (out / OPTIMIZER_FILE).is_file() and not config.freeze_encoders:
        load_optimizer(optimizer, out / OPTIMIZER_FILE)
    sampler = SceneSampler(data_dir)
    rng = np.random.default_rng([config.seed, step])
    model.train()
    history = []
    log(f"training {preset} on {len(sampler.paths)} scenes, {device}, steps {step}..{config.steps}")
    started = time.time()
    while step < config.steps:
        n_views = int(rng.integers(config.min_views, config.max_views + 1))
        images, targets, mask = sampler.sample(rng, config.batch_size, n_views, config.crop)
        images, mask = images.to(device), mask.to(device)
        targets = {k: v.to(device) for k, v in targets.items()}
        pred = flatten_views(model(images, return_logits=True))
        loss, parts = material_loss(pred, targets, mask, scale_invariant_albedo=step >= config.albedo_warmup,
                                    albedo_anchor=config.albedo_anchor, bounded_weight=config.bounded_weight,
                                    no_gradient=config.no_gradient)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        step += 1
        # A bounded head whose spread over valid pixels stays ~0 has collapsed to one value.
        spreads = {f"{k}_spread": float(pred[k].detach()[mask].std()) for k in LOGIT_KEYS}
        record = {"step": step, "loss": float(loss.detach()), "views": n_views, "lr": optimizer.param_groups[0]["lr"],
                  "seconds": round(time.time() - started, 1), **parts, **spreads}
        history.append(record)
        with open(out / LOG_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        log(f"step {step} loss {record['loss']:.4f} ({n_views} views, {record['seconds']} s)")
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(model, out / MODEL_FILE, preset,
                            {"step": step, "kind": "supervised", LONG_SIDE_KEY: str(sampler.long_side())})
            save_optimizer(optimizer, out / OPTIMIZER_FILE, step)
            sampler.refresh()
    return history
