"""The one parameter schema of the node, the launch file and every CLI.

Types, descriptions, ranges and choices live here; default values live only in
config/perception.yaml (the node's params-file format), so there is no second copy of defaults.
Parameters are named `section.field` exactly as ROS 2 flattens the nested YAML. `build_params`
checks every value, so a bad one is refused where it enters (configure, `--set`, a params file)
instead of failing deep inside the pipeline.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mvinverse_ros.resources import share_file

DEFAULTS_SOURCE = "config/perception.yaml"


class ParameterError(ValueError):
    """A parameter file or value that does not fit the schema; the message names the parameter."""


def _doc(text: str, *, low: float | None = None, high: float | None = None,
         choices: tuple[str, ...] | None = None, pattern: str | None = None) -> Any:
    """Field metadata: description and allowed values.

    Allowed values are an inclusive numeric range, closed choices or a regular expression.
    """
    return field(metadata={"description": text, "low": low, "high": high, "choices": choices, "pattern": pattern})


@dataclass(frozen=True)
class ModelParams:
    checkpoint: str = _doc("'' = bundled default model; else a .pt/.pth/.safetensors path or a Hugging Face repo id")
    preset: str = _doc("architecture used when the checkpoint does not name one", choices=("official", "small", "tiny"))
    device: str = _doc("auto | cpu | cuda | cuda:N", pattern=r"auto|cpu|cuda(:[0-9]+)?")
    dtype: str = _doc("fp32 | bf16 | fp16 (autocast on the device)", choices=("fp32", "bf16", "fp16"))
    normal_convention: str = _doc("camera frame of the weights' normal output, converted to the REP 103 optical "
                                  "frame: opencv (x right, y down, z forward) | opengl (x right, y up, z back)",
                                  choices=("opencv", "opengl"))
    long_side: int = _doc("network input long side in pixels (multiple of 14); 0 = the size the weights were "
                          "trained at (bundled default: 112, official: 518)", low=0, high=4088)
    backend: str = _doc("torch (eager) | onnxruntime (the graphs of `mvinverse-ros export onnx` in model.onnx_dir)",
                        choices=("torch", "onnxruntime"))
    onnx_dir: str = _doc("folder of an ONNX export (backend onnxruntime); made for this preset and long side")
    onnx_providers: list[str] = _doc("ONNX Runtime execution providers in order of preference, e.g. "
                                     "[TensorrtExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider]")
    trt_fp16: bool = _doc("TensorRT provider: build fp16 engines")
    trt_cache_dir: str = _doc("TensorRT provider: engine cache folder, so an engine is built once per GPU and "
                              "TensorRT version ('' = no cache: rebuilt at every start)")


@dataclass(frozen=True)
class WindowParams:
    size: int = _doc("frames per window", low=2, high=16)
    stride: int = _doc("run the network every `stride` accepted frames (at most window.size)", low=1, high=16)
    publish: str = _doc("newest (lowest latency) | all (every frame of the window)", choices=("newest", "all"))
    min_translation: float = _doc("metres the camera must move before a new keyframe (poses known)", low=0.0,
                                  high=100.0)
    min_rotation_deg: float = _doc("degrees the camera must turn before a new keyframe (poses known)", low=0.0,
                                   high=180.0)
    min_interval: float = _doc("seconds between keyframes when no pose is known", low=0.0, high=3600.0)
    reset_gap: float = _doc("seconds without frames, or any backwards jump, that resets the window", low=0.0,
                            high=3600.0)


@dataclass(frozen=True)
class InputParams:
    cameras: list[str] = _doc("camera names, one per camera")
    image_topics: list[str] = _doc("colour image topic per camera (raw name)")
    camera_info_topics: list[str] = _doc("camera_info topic per camera")
    depth_topics: list[str] = _doc("registered depth topic per camera, '' for none")
    transport: str = _doc("raw | compressed (subscribes to <image_topic>/compressed)", choices=("raw", "compressed"))
    reliability: str = _doc("best_effort (sensor-data QoS) | reliable", choices=("best_effort", "reliable"))
    sync_queue_size: int = _doc("ApproximateTimeSynchronizer queue size", low=1, high=1000)
    sync_slop: float = _doc("seconds two messages may differ and still pair", low=0.0, high=10.0)
    max_pixels: int = _doc("largest image (width x height) decoded; larger ones are skipped before decoding",
                           low=1, high=1_000_000_000)


@dataclass(frozen=True)
class TfParams:
    fixed_frame: str = _doc("frame the cloud is fused and published in")
    lookup_timeout: float = _doc("seconds to wait for a transform at the image stamp", low=0.0, high=10.0)


@dataclass(frozen=True)
class FusionParams:
    enabled: bool = _doc("build and publish the fused material cloud")
    voxel_size: float = _doc("voxel edge in metres", low=0.001, high=10.0)
    extent: float = _doc("metres from the fixed-frame origin beyond which points are dropped", low=0.01,
                         high=10000.0)
    max_depth: float = _doc("depth in metres beyond which pixels are ignored", low=0.01, high=1000.0)
    pixel_stride: int = _doc("unproject every n-th pixel in each direction", low=1, high=64)
    max_points: int = _doc("voxel budget; the oldest voxels leave first", low=1, high=100_000_000)
    save_map: str = _doc("PLY path the ~/save_map service writes ('' = mvinverse_map.ply in the node's working "
                         "folder)")
    load_map: str = _doc("'' = start empty; else a PLY written by save_map or `bag process` (same voxel_size) "
                         "that the map starts from on configure and returns to on reset")


@dataclass(frozen=True)
class ExecutionParams:
    queue_size: int = _doc("windows waiting for the inference worker; the newest wins", low=1, high=100)
    publish_cloud_every: int = _doc("publish the fused cloud every n windows", low=1, high=10000)
    publish_materials: bool = _doc("also publish ~/materials (MaterialMaps: every map once more, raw, with the "
                                   "window's stamps and camera_info; ~11 MB at 640x480, reliable subscribers only)")


@dataclass(frozen=True)
class BagParams:
    storage: str = _doc("output bag storage: mcap | sqlite3", choices=("mcap", "sqlite3"))
    cloud_per_window: bool = _doc("also write the fused cloud after every window")
    copy_inputs: bool = _doc("copy the input topics into the output bag")
    map_encoding: str = _doc("png: each map as a PNG CompressedImage on <topic>/compressed (8-bit maps lossless, "
                             "[0, 1] maps within 1/65535, normals within 2/65535) | raw: the node's Images "
                             "(float32 maps)", choices=("png", "raw"))
    write_materials: bool = _doc("also write MaterialMaps (every map once more, as raw Images, with the window's "
                                 "stamps and camera_info), as the node publishes it")
    compression: str = _doc("MCAP chunk compression: zstd | none (sqlite3 bags are not compressed)",
                            choices=("zstd", "none"))


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
    """One flattened parameter: `name` as ROS sees it, its type, description and allowed values.

    Attributes:
        low, high: inclusive bounds of a number (None: unbounded on that side).
        choices: the closed set of values of a string.
        pattern: a regular expression a string must match in full.
    """

    name: str
    type: Any
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None

    def allowed(self) -> str:
        """The allowed values in words ('2..16', 'one of newest, all'), '' when any value of the type goes."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.pattern:
            return f"matching {self.pattern}"
        if self.low is not None or self.high is not None:
            low = "" if self.low is None else f"{self.low:g}"
            high = "" if self.high is None else f"{self.high:g}"
            return f"{low}..{high}"
        return ""

    def check(self, value: Any, source: str) -> None:
        """Raise ParameterError when `value` (already of the spec's type) is outside the allowed values."""
        bad = False
        if self.type is float and not math.isfinite(value):
            bad = True
        elif self.type in (int, float):
            bad = (self.low is not None and value < self.low) or (self.high is not None and value > self.high)
        elif self.choices and value not in self.choices:
            bad = True
        elif self.pattern and re.fullmatch(self.pattern, value) is None:
            bad = True
        if bad:
            allowed = self.allowed() or ("a finite number" if self.type is float else "")
            raise ParameterError(f"{self.name}={value!r} ({source}) is not allowed: expected {allowed}")


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(PerceptionParams)
    return {f.name: hints[f.name] for f in dataclasses.fields(PerceptionParams)}


def parameter_specs() -> list[ParameterSpec]:
    """Every parameter in declaration order."""
    specs = []
    for section, cls in _section_types().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            meta = f.metadata
            specs.append(ParameterSpec(f"{section}.{f.name}", hints[f.name], meta["description"], meta["low"],
                                       meta["high"], meta["choices"], meta["pattern"]))
    return specs


def spec(name: str) -> ParameterSpec:
    """The spec of one parameter.

    Raises:
        ParameterError: for a name the schema does not have.
    """
    for candidate in parameter_specs():
        if candidate.name == name:
            return candidate
    raise ParameterError(f"unknown parameter {name}")


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


def _yaml_scalar(text: str) -> Any:
    """A --set value as YAML would read it, except that '1e-3' (a YAML 1.1 string) is a number."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def coerce(spec: ParameterSpec, value: Any, source: str = "value") -> Any:
    """Check or convert `value` to the spec's type; strings (from --set) are parsed as YAML.

    Raises:
        ParameterError: a value of the wrong type, named with the parameter and `source`.
    """
    if isinstance(value, str) and spec.type is not str:
        try:
            value = _yaml_scalar(value) if value != "" else []
        except yaml.YAMLError as err:
            raise ParameterError(f"{spec.name}={value!r} ({source}) is not valid YAML: {err}") from None
    origin = typing.get_origin(spec.type)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [str(v) if v is not None else "" for v in value]
    if spec.type is bool:
        if isinstance(value, bool):
            return value
        raise ParameterError(f"{spec.name}={value!r} ({source}) must be true or false")
    if spec.type is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"{spec.name}={value!r} ({source}) must be an integer")
        return value
    if spec.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{spec.name}={value!r} ({source}) must be a number")
        return float(value)
    return "" if value is None else str(value)


def _check_together(params: PerceptionParams, sources: dict[str, str]) -> None:
    """Rules that join several parameters (each one alone is checked by its spec)."""
    window, inputs = params.window, params.inputs
    if window.stride > window.size:
        raise ParameterError(f"window.stride={window.stride} ({sources.get('window.stride', 'value')}) is not "
                             f"allowed: expected 1..window.size ({window.size}); a larger stride drops keyframes "
                             "that no window ever sees")
    cameras = len(inputs.cameras)
    if cameras == 0:
        raise ParameterError(f"inputs.cameras ({sources.get('inputs.cameras', 'value')}) is empty: name one camera "
                             "or more")
    per_camera = {"inputs.image_topics": inputs.image_topics, "inputs.camera_info_topics": inputs.camera_info_topics}
    if inputs.depth_topics:  # [] = no depth for any camera
        per_camera["inputs.depth_topics"] = inputs.depth_topics
    for name, values in per_camera.items():
        if len(values) != cameras:
            raise ParameterError(f"{name} has {len(values)} entries ({sources.get(name, 'value')}) but inputs.cameras "
                                 f"has {cameras}: give one per camera" +
                                 (" (or [] for no depth at all)" if name == "inputs.depth_topics" else ""))
    if params.fusion.extent / params.fusion.voxel_size >= 2 ** 20 - 2:
        raise ParameterError(f"fusion.extent={params.fusion.extent} over fusion.voxel_size={params.fusion.voxel_size} "
                             "is more than 2**20 voxels per axis: raise voxel_size or lower extent")


def build_params(values: dict[str, Any], sources: dict[str, str] | None = None) -> PerceptionParams:
    """Typed, checked parameters from a complete flat mapping.

    Args:
        values: `section.field` -> value.
        sources: where each value came from, for the error message ('--set', a file path, ...).

    Raises:
        ParameterError: unknown or missing names, a wrong type, a value outside its range or choices.
    """
    sources = sources or {}
    specs = {s.name: s for s in parameter_specs()}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ParameterError(f"unknown parameters: {', '.join(unknown)}")
    missing = sorted(set(specs) - set(values))
    if missing:
        raise ParameterError(f"parameters without a value: {', '.join(missing)}")
    sections: dict[str, dict[str, Any]] = {}
    for name, one in specs.items():
        source = sources.get(name, "value")
        value = coerce(one, values[name], source)
        if typing.get_origin(one.type) is not list:
            one.check(value, source)
        section, key = name.split(".", 1)
        sections.setdefault(section, {})[key] = value
    types = _section_types()
    params = PerceptionParams(**{s: types[s](**kv) for s, kv in sections.items()})
    _check_together(params, sources)
    return params


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`name=value` strings (the CLI's --set) to a mapping."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"--set expects name=value, got {item!r}")
        out[name.strip()] = value
    return out


def load_params(params_file: str | Path | None = None, overrides: dict[str, Any] | None = None,
                override_source: str | dict[str, str] = "--set") -> PerceptionParams:
    """Defaults from config/perception.yaml, then `params_file`, then `overrides` (later wins).

    Args:
        params_file: a node params file over the defaults.
        overrides: `section.field` -> value, over the file.
        override_source: where the overrides came from, for error messages: one name for all of
            them, or a name per override (a CLI flag such as '--window'; '--set' for the others).

    Raises:
        ParameterError: an unreadable file or a value the schema refuses, naming where it came from.
    """
    values = read_params_file(default_params_file())
    sources = dict.fromkeys(values, DEFAULTS_SOURCE)
    if params_file is not None:
        from_file = read_params_file(params_file)
        values.update(from_file)
        sources.update(dict.fromkeys(from_file, str(params_file)))
    overrides = overrides or {}
    values.update(overrides)
    if isinstance(override_source, str):
        override_source = dict.fromkeys(overrides, override_source)
    sources.update({name: override_source.get(name, "--set") for name in overrides})
    return build_params(values, sources)


def to_flat(params: PerceptionParams) -> dict[str, Any]:
    """The inverse of build_params: `section.field` -> value."""
    return {f"{s}.{k}": v for s, sec in dataclasses.asdict(params).items() for k, v in sec.items()}


ROS_TYPE_NAMES = {str: "string", int: "integer", float: "double", bool: "bool", list[str]: "string[]"}
"""Parameter types as `ros2 param describe` names them."""


def markdown_table() -> str:
    """The README's parameter table: name, ROS type, default, allowed values, meaning.

    Generated here so that the documentation cannot drift from the schema (`python -m mvinverse_ros.params`).
    """
    defaults = to_flat(load_params())
    lines = ["| parameter | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for one in parameter_specs():
        default = yaml.safe_dump(defaults[one.name], default_flow_style=True).strip().removesuffix("...").strip()
        allowed = one.allowed().replace("|", "\\|")
        description = one.description.replace("|", "/")
        lines.append(f"| `{one.name}` | {ROS_TYPE_NAMES[one.type]} | `{default}` | {allowed} | {description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
