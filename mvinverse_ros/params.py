"""The one parameter schema of the node, the launch file and the offline CLI.

Types and descriptions live here; default values live only in config/perception.yaml (the node's
params-file format), so there is no second copy of defaults. Parameters are named
`section.field` exactly as ROS 2 flattens the nested YAML.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mvinverse_ros.resources import share_file


class ParameterError(ValueError):
    """A parameter file or override that does not fit the schema."""


def _doc(text: str) -> Any:
    return field(metadata={"description": text})


@dataclass(frozen=True)
class ModelParams:
    checkpoint: str = _doc("'' = bundled default model; else a .pt/.pth/.safetensors path or a Hugging Face repo id")
    preset: str = _doc("architecture used when the checkpoint does not name one ('small', 'official', ...)")
    device: str = _doc("auto | cpu | cuda | cuda:N")
    dtype: str = _doc("fp32 | bf16 | fp16 (autocast on the device)")
    normal_convention: str = _doc("camera frame of the weights' normal output, converted to the REP 103 optical "
                                  "frame: opencv (x right, y down, z forward) | opengl (x right, y up, z back)")
    long_side: int = _doc("network input long side in pixels (multiple of 14); 0 = the size the weights were "
                          "trained at (bundled default: 112, official: 518)")


@dataclass(frozen=True)
class WindowParams:
    size: int = _doc("frames per window (2..16)")
    stride: int = _doc("run the network every `stride` accepted frames")
    publish: str = _doc("newest (lowest latency) | all (every frame of the window)")
    min_translation: float = _doc("metres the camera must move before a new keyframe (poses known)")
    min_rotation_deg: float = _doc("degrees the camera must turn before a new keyframe (poses known)")
    min_interval: float = _doc("seconds between keyframes when no pose is known")
    reset_gap: float = _doc("seconds without frames, or any backwards jump, that resets the window")


@dataclass(frozen=True)
class InputParams:
    cameras: list[str] = _doc("camera names, one per camera")
    image_topics: list[str] = _doc("colour image topic per camera (raw name)")
    camera_info_topics: list[str] = _doc("camera_info topic per camera")
    depth_topics: list[str] = _doc("registered depth topic per camera, '' for none")
    transport: str = _doc("raw | compressed (subscribes to <image_topic>/compressed)")
    reliability: str = _doc("best_effort (sensor-data QoS) | reliable")
    sync_queue_size: int = _doc("ApproximateTimeSynchronizer queue size")
    sync_slop: float = _doc("seconds two messages may differ and still pair")


@dataclass(frozen=True)
class TfParams:
    fixed_frame: str = _doc("frame the cloud is fused and published in")
    lookup_timeout: float = _doc("seconds to wait for a transform at the image stamp")


@dataclass(frozen=True)
class FusionParams:
    enabled: bool = _doc("build and publish the fused material cloud")
    voxel_size: float = _doc("voxel edge in metres")
    extent: float = _doc("metres from the fixed-frame origin beyond which points are dropped")
    max_depth: float = _doc("depth in metres beyond which pixels are ignored")
    pixel_stride: int = _doc("unproject every n-th pixel in each direction")
    max_points: int = _doc("voxel budget; the oldest voxels leave first")


@dataclass(frozen=True)
class ExecutionParams:
    queue_size: int = _doc("windows waiting for the inference worker; the newest wins")
    publish_cloud_every: int = _doc("publish the fused cloud every n windows")


@dataclass(frozen=True)
class BagParams:
    storage: str = _doc("output bag storage: mcap | sqlite3")
    cloud_per_window: bool = _doc("also write the fused cloud after every window")
    copy_inputs: bool = _doc("copy the input topics into the output bag")


@dataclass(frozen=True)
class PerceptionParams:
    model: ModelParams
    window: WindowParams
    inputs: InputParams
    tf: TfParams
    fusion: FusionParams
    execution: ExecutionParams
    bag: BagParams


@dataclass(frozen=True)
class ParameterSpec:
    """One flattened parameter: `name` as ROS sees it, its Python type and its description."""

    name: str
    type: Any
    description: str


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(PerceptionParams)
    return {f.name: hints[f.name] for f in dataclasses.fields(PerceptionParams)}


def parameter_specs() -> list[ParameterSpec]:
    """Every parameter in declaration order."""
    specs = []
    for section, cls in _section_types().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            specs.append(ParameterSpec(f"{section}.{f.name}", hints[f.name], f.metadata["description"]))
    return specs


def default_params_file() -> Path:
    """config/perception.yaml, wherever the package was installed."""
    return share_file("config/perception.yaml")


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def read_params_file(path: str | Path) -> dict[str, Any]:
    """Flattened `ros__parameters` of a node params file (any node-name key: `/**`, `/ns/node`, ...)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ParameterError(f"Could not read params file {path}: {err}") from err
    flat: dict[str, Any] = {}
    for node_section in (doc or {}).values():
        if isinstance(node_section, dict) and "ros__parameters" in node_section:
            flat.update(_flatten(node_section["ros__parameters"]))
    if not flat:
        raise ParameterError(f"{path} has no ros__parameters section")
    return flat


def coerce(spec: ParameterSpec, value: Any) -> Any:
    """Check or convert `value` to the spec's type; strings (from --set) are parsed as YAML."""
    if isinstance(value, str) and spec.type is not str:
        value = yaml.safe_load(value) if value != "" else []
    origin = typing.get_origin(spec.type)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [str(v) if v is not None else "" for v in value]
    if spec.type is bool:
        if isinstance(value, bool):
            return value
        raise ParameterError(f"{spec.name} must be true or false, got {value!r}")
    if spec.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"{spec.name} must be an integer, got {value!r}")
        return value
    if spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{spec.name} must be a number, got {value!r}")
        return float(value)
    return "" if value is None else str(value)


def build_params(values: dict[str, Any]) -> PerceptionParams:
    """Typed parameters from a complete flat mapping; unknown or missing names are errors."""
    specs = {s.name: s for s in parameter_specs()}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ParameterError(f"unknown parameters: {', '.join(unknown)}")
    missing = sorted(set(specs) - set(values))
    if missing:
        raise ParameterError(f"parameters without a value: {', '.join(missing)}")
    sections: dict[str, dict[str, Any]] = {}
    for name, spec in specs.items():
        section, key = name.split(".", 1)
        sections.setdefault(section, {})[key] = coerce(spec, values[name])
    types = _section_types()
    return PerceptionParams(**{s: types[s](**kv) for s, kv in sections.items()})


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`name=value` strings (the CLI's --set) to a mapping."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"--set expects name=value, got {item!r}")
        out[name.strip()] = value
    return out


def load_params(params_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PerceptionParams:
    """Defaults from config/perception.yaml, then `params_file`, then `overrides` (later wins)."""
    values = read_params_file(default_params_file())
    if params_file is not None:
        values.update(read_params_file(params_file))
    values.update(overrides or {})
    return build_params(values)


def to_flat(params: PerceptionParams) -> dict[str, Any]:
    """The inverse of build_params: `section.field` -> value."""
    return {f"{s}.{k}": v for s, sec in dataclasses.asdict(params).items() for k, v in sec.items()}
