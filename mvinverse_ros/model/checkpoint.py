"""Reading, checking and writing MVInverse weights.

Sources: the bundled default (`weights/default.safetensors`), local .pt/.pth/.bin (a bare state
dict or one under "model") and .safetensors files, or a Hugging Face repo id (the official weights:
`maddog241/mvinverse`). Loading is strict: every key must match by name and shape, except
`encoder.mask_token`, which the official model deletes but older checkpoints may still carry.
"""
from __future__ import annotations

import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mvinverse_ros.model.config import PRESETS, preset_config
from mvinverse_ros.model.errors import ModelError
from mvinverse_ros.model.mvinverse import MVInverse, build_model

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default.safetensors"
OFFICIAL_HUB_ID = "maddog241/mvinverse"
HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")
IGNORABLE_KEYS = frozenset({"encoder.mask_token"})  # DINOv2's masking token, unused and deleted by the official model
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
WEIGHT_SUFFIXES = (".safetensors", *TORCH_SUFFIXES)
_MAX_LISTED = 20
# The official model was trained at 518x518 (37x37 patches); checkpoints trained at another size
# record theirs under this safetensors metadata key (save_checkpoint's extra_metadata).
OFFICIAL_LONG_SIDE = 518
LONG_SIDE_KEY = "trained_at_long_side"


@dataclass
class LoadedModel:
    """A network ready for inference (eval mode) and where it came from.

    `native_long_side` is the input long side the weights were trained at: the size to run them
    at unless the user asks for another (`model.long_side: 0`).
    """

    model: MVInverse
    preset: str
    source: str
    trained: bool
    native_long_side: int = OFFICIAL_LONG_SIDE

    def untrained_warning(self) -> str | None:
        """The one warning for random weights (every CLI and the node say it the same way); None when trained."""
        if self.trained:
            return None
        return (f"the '{self.preset}' model has UNTRAINED (random) weights ({self.source}): its maps are "
                "meaningless; give trained weights with model.checkpoint (--checkpoint)")


def _listing(keys) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _mismatches(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    problems = []
    missing = expected.keys() - state_dict.keys()
    unexpected = state_dict.keys() - expected.keys()
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    wrong = [
        f"{name} {tuple(state_dict[name].shape)} != {shape}"
        for name, shape in expected.items()
        if name in state_dict and tuple(state_dict[name].shape) != shape
    ]
    if wrong:
        problems.append(f"shape mismatches (checkpoint != model): {_listing(wrong)}")
    return problems


def _dtype_mismatches(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Tensors whose kind (floating point or not) differs from the model's, e.g. int32 weights."""
    wrong = [
        f"{name} {str(state_dict[name].dtype).removeprefix('torch.')} != {str(t.dtype).removeprefix('torch.')}"
        for name, t in model.state_dict().items()
        if name in state_dict and state_dict[name].is_floating_point() != t.is_floating_point()
    ]
    return [f"dtype mismatches (checkpoint != model): {_listing(wrong)}"] if wrong else []


def _non_finite(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or infinity (a diverged training run).

    The sum is the quick test (NaN and infinity survive it; measured 3-4x faster than isfinite on
    the official model's 1e9 values); isfinite confirms, so a sum that merely overflows is no finding.
    """
    return [name for name, t in state_dict.items()
            if t.is_floating_point() and not torch.isfinite(t.sum()) and not bool(torch.isfinite(t).all())]


def load_official_state_dict(model: MVInverse, state_dict: dict[str, torch.Tensor]) -> None:
    """Strictly load official-layout weights into `model` (float tensors cast to the model's float32).

    A model built on the meta device takes the checkpoint tensors over without copying.

    Raises:
        ModelError: names every missing, unexpected, mis-shaped or mis-typed key, and tensors with
            NaN or infinite values.
    """
    state_dict = {
        name: (tensor.float() if tensor.is_floating_point() else tensor)
        for name, tensor in state_dict.items()
        if name not in IGNORABLE_KEYS
    }
    problems = _mismatches(model, state_dict) or _dtype_mismatches(model, state_dict)
    if problems:
        raise ModelError("checkpoint does not fit the model: " + "; ".join(problems))
    non_finite = _non_finite(state_dict)
    if non_finite:
        raise ModelError(f"checkpoint holds NaN or infinite values (diverged training?) in {_listing(non_finite)}")
    on_meta = any(t.is_meta for t in model.state_dict().values())
    model.load_state_dict(state_dict, strict=True, assign=on_meta)


def save_checkpoint(
    model: MVInverse, path: str | Path, preset: str, extra_metadata: dict[str, str] | None = None
) -> None:
    """Write the model's state dict as safetensors; metadata records the preset (and `extra_metadata`).

    Raises:
        ModelError: unknown preset or an unwritable path.
    """
    preset_config(preset)
    metadata = {"preset": preset, **{key: str(value) for key, value in (extra_metadata or {}).items()}}
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    try:
        save_file(tensors, str(path), metadata=metadata)
    except OSError as err:
        raise ModelError(f"cannot write checkpoint {path}: {err}") from err


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict, metadata) of a local .safetensors or .pt/.pth/.bin file.

    Current torch files (zip) are memory-mapped; legacy ones (torch.save with
    `_use_new_zipfile_serialization=False`, or torch < 1.6) cannot be, so they are read into memory.

    Raises:
        ModelError: missing file, a directory, unknown suffix, unreadable content.
    """
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        hint = f"; it holds {_listing(inside)}" if inside else "; it holds no weights file"
        raise ModelError(f"checkpoint {path} is a directory, not a weights file: give the file itself{hint}")
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    legacy = False
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                return {name: handle.get_tensor(name) for name in handle.keys()}, metadata
        if path.suffix in TORCH_SUFFIXES:
            legacy = not zipfile.is_zipfile(path)
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=not legacy)
        else:
            raise ModelError(f"checkpoint {path}: unknown suffix {path.suffix!r} (use .safetensors, .pt, .pth or .bin)")
    except ModelError:
        raise
    except Exception as err:  # torch/safetensors raise many types for corrupt or foreign files
        kind = " (not a zip-format torch file, so read as a legacy torch.save file)" if legacy else ""
        raise ModelError(f"cannot read checkpoint {path}{kind}: {err}") from err
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        loaded = loaded["model"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelError(f"checkpoint {path} holds no state dict (expected tensors, or a dict with a 'model' entry)")
    return loaded, {}


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect, so an offline robot fails in seconds, not after the Hub's retries."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError:
        return False
    return True


def download_from_hub(repo_id: str) -> Path:
    """Local path of the repo's weights file (model.safetensors, else pytorch_model.bin), cache first.

    Raises:
        ModelError: the file is neither cached nor downloadable (with how to fetch it by hand).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    for filename in HUB_FILENAMES:
        try:
            return Path(hf_hub_download(repo_id, filename, local_files_only=True))
        except LocalEntryNotFoundError:
            continue
    failures = []
    if not _hub_reachable():
        failures.append("the Hugging Face Hub is not reachable (offline?) and nothing is cached")
    else:
        for filename in HUB_FILENAMES:
            try:
                return Path(hf_hub_download(repo_id, filename))
            except LocalEntryNotFoundError as err:
                failures.append(f"{filename}: {err}")
                break
            except EntryNotFoundError:
                failures.append(f"{filename}: not in the repo")
            except Exception as err:  # unknown repo, auth, HTTP errors: all end the same way
                failures.append(f"{filename}: {type(err).__name__}: {err}")
    raise ModelError(
        f"cannot get the weights of Hugging Face repo {repo_id!r}: {'; '.join(failures)}. "
        f"To use them offline, download the file on a machine with internet access, e.g. "
        f"`hf download {repo_id} {HUB_FILENAMES[0]} --local-dir weights/` "
        f"(or from https://huggingface.co/{repo_id}/tree/main), copy it here and pass its path as the "
        f"checkpoint (model.checkpoint / --checkpoint); `mvinverse-ros convert` turns a .bin/.pt into .safetensors."
    )


def infer_preset(state_dict: dict[str, torch.Tensor]) -> str | None:
    """The preset whose names and shapes the state dict matches exactly, if any."""
    state_dict = {name: t for name, t in state_dict.items() if name not in IGNORABLE_KEYS}
    for name in PRESETS:
        with torch.device("meta"):
            candidate = build_model(name)
        if not _mismatches(candidate, state_dict):
            return name
    return None


def model_from_state_dict(state_dict: dict[str, torch.Tensor], preset: str) -> MVInverse:
    """Build `preset` without allocating weights and take the checkpoint tensors over (strict).

    Raises:
        ModelError: unknown preset, keys/shapes/dtypes that do not fit, NaN or infinite weights.
    """
    preset_config(preset)
    with torch.device("meta"):
        model = build_model(preset)
    load_official_state_dict(model, state_dict)
    return model


def native_long_side(metadata: dict[str, str], path: str | Path, preset: str) -> int:
    """The input long side the weights were trained at: their `trained_at_long_side` metadata, else 518.

    Raises:
        ModelError: metadata that is not a positive multiple of the preset's patch side (14), or an
            unknown preset.
    """
    patch = preset_config(preset).patch_size
    text = metadata.get(LONG_SIDE_KEY, str(OFFICIAL_LONG_SIDE))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0 or value % patch:
        raise ModelError(f"checkpoint {path}: metadata {LONG_SIDE_KEY}={text!r} is not a positive multiple of "
                         f"the {patch}-pixel patch; fix or drop that metadata entry")
    return value


def resolve_checkpoint(checkpoint: str) -> Path:
    """Local path of a checkpoint given as a path or a Hugging Face repo id ("owner/name")."""
    path = Path(checkpoint).expanduser()
    if path.exists() or path.suffix in WEIGHT_SUFFIXES or checkpoint.count("/") != 1:
        return path
    return download_from_hub(checkpoint)


def load_model(checkpoint: str = "", preset: str = "small", device: str | torch.device = "cpu") -> LoadedModel:
    """The network to run, in eval mode on `device`.

    Args:
        checkpoint: "" = bundled default weights if present, else an untrained `preset`
            (trained=False; the caller warns); or a local .safetensors/.pt/.pth/.bin path; or a
            Hugging Face repo id such as "maddog241/mvinverse".
        preset: architecture when the checkpoint does not name one (safetensors metadata) and
            its shapes do not identify one.
        device: torch device.

    Raises:
        ModelError: unreadable/unfit checkpoint, unknown preset, Hub not reachable.
    """
    if not checkpoint:
        if not DEFAULT_WEIGHTS.is_file():
            model = build_model(preset)
            return LoadedModel(model.to(device).eval(), preset, f"untrained {preset}", trained=False)
        checkpoint = str(DEFAULT_WEIGHTS)
    path = resolve_checkpoint(checkpoint)
    state_dict, metadata = read_state_dict(path)
    chosen = metadata.get("preset") or infer_preset(state_dict) or preset
    native = native_long_side(metadata, path, chosen)
    try:
        model = model_from_state_dict(state_dict, chosen)
    except ModelError as err:
        raise ModelError(f"checkpoint {path} (preset {chosen!r}): {err}") from err
    return LoadedModel(model.to(device).eval(), chosen, str(path), trained=True, native_long_side=native)
