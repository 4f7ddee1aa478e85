"""The fused voxel map as a binary little-endian PLY file: a cloud for viewers that also resumes the map.

One vertex per voxel, in voxel-key order. Viewers (MeshLab, CloudCompare, Open3D) read x/y/z,
nx/ny/nz and red/green/blue; the materials travel as extra float properties named as in
MaterialCloud (albedo_r/g/b, roughness, metallic, shading_r/g/b, view_count, albedo_std_r/g/b,
roughness_std, metallic_std, specular).

The same vertices carry the map's exact state, so that `read_map_ply` + `VoxelMap.restore`
rebuild the map bit for bit (and a node can resume from a file that `save_map` or `bag process`
wrote): `voxel_i/j/k` (int, the voxel index floor(p / voxel_size)), `sum_<column>` (double, the
per-voxel sums of geometry.fusion.SUM_COLUMNS), `m2_<column>` (double, the sums of squared
deviations of SPREAD_COLUMNS) and `last_seen` (uint, the integration tick). The voxel size and
the map's tick are header comments (`comment mvinverse_ros voxel_size 0.02`, written with
Python's repr, which reads back to the same float). PLY has no 64-bit integer; indices fit int
(+-2**20 per axis) and ticks fit uint (about 4e9 frames), which `write_ply` checks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.geometry.fusion import SPREAD_COLUMNS, SUM_COLUMNS, VoxelMap, VoxelMapState
from mvinverse_ros.types import MaterialCloud

_PLY_TYPES = {np.dtype("<f4"): "float", np.dtype("<f8"): "double", np.dtype("u1"): "uchar", np.dtype("<i4"): "int",
              np.dtype("<u4"): "uint"}
_COMMENT = "comment mvinverse_ros "
_SUMS = tuple(f"sum_{name}" for name in SUM_COLUMNS)
_M2 = tuple(f"m2_{name}" for name in SPREAD_COLUMNS)
_INDICES = ("voxel_i", "voxel_j", "voxel_k")


def cloud_columns(cloud: MaterialCloud) -> list[tuple[str, np.ndarray]]:
    """The viewer and material properties of every point, in file order (name, values)."""
    albedo8 = np.clip(np.rint(cloud.albedo * 255.0), 0, 255).astype(np.uint8)
    columns = [("x", cloud.points[:, 0]), ("y", cloud.points[:, 1]), ("z", cloud.points[:, 2]),
               ("nx", cloud.normal[:, 0]), ("ny", cloud.normal[:, 1]), ("nz", cloud.normal[:, 2])]
    columns += [(name, albedo8[:, c]) for c, name in enumerate(("red", "green", "blue"))]
    columns += [(f"albedo_{name}", cloud.albedo[:, c]) for c, name in enumerate("rgb")]
    columns += [("roughness", cloud.roughness), ("metallic", cloud.metallic)]
    columns += [(f"shading_{name}", cloud.shading[:, c]) for c, name in enumerate("rgb")]
    columns += [("view_count", cloud.view_count)]
    columns += [(f"albedo_std_{name}", cloud.albedo_std[:, c]) for c, name in enumerate("rgb")]
    columns += [("roughness_std", cloud.roughness_std), ("metallic_std", cloud.metallic_std),
                ("specular", cloud.specular)]
    return columns


def state_columns(state: VoxelMapState) -> list[tuple[str, np.ndarray]]:
    """The map state's properties (exact types), in file order (name, values).

    Raises:
        ConversionError: a tick beyond what a PLY uint holds.
    """
    if state.tick > np.iinfo(np.uint32).max:
        raise ConversionError(f"the map's tick {state.tick} does not fit a PLY uint")
    columns = [(name, state.indices[:, axis].astype("<i4")) for axis, name in enumerate(_INDICES)]
    columns += [(name, state.sums[:, c].astype("<f8")) for c, name in enumerate(_SUMS)]
    columns += [(name, state.m2[:, c].astype("<f8")) for c, name in enumerate(_M2)]
    columns += [("last_seen", state.last_seen.astype("<u4"))]
    return columns


def _vertices(columns: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """One little-endian record per point, each property of its column's type."""
    vertices = np.empty(len(columns[0][1]), dtype=[(name, values.dtype.newbyteorder("<")) for name, values in columns])
    for name, values in columns:
        vertices[name] = values
    return vertices


def write_ply(path: str | Path, voxels: VoxelMap) -> None:
    """Write the map's cloud and exact state to `path`.

    Raises:
        ConversionError: the file cannot be written, or the state does not fit PLY's types.
    """
    state = voxels.state()
    vertices = _vertices(cloud_columns(voxels.cloud()) + state_columns(state))
    header = ["ply", "format binary_little_endian 1.0", "comment mvinverse_ros fused material cloud",
              f"{_COMMENT}voxel_size {state.voxel_size!r}", f"{_COMMENT}tick {state.tick}",
              f"element vertex {len(vertices)}"]
    header += [f"property {_PLY_TYPES[vertices.dtype[name]]} {name}" for name in vertices.dtype.names or ()]
    header.append("end_header")
    try:
        with open(path, "wb") as stream:
            stream.write(("\n".join(header) + "\n").encode("ascii"))
            stream.write(vertices.tobytes())
    except OSError as err:
        raise ConversionError(f"Could not write PLY {path}: {err}") from err


def _read(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(header lines, vertex records) of a binary little-endian PLY with one vertex element."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConversionError(f"Could not read PLY {path}: {err}") from err
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise ConversionError(f"Could not read PLY {path}: no PLY header")
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise ConversionError(f"Could not read PLY {path}: only binary_little_endian is supported")
    elements = [line.split() for line in lines if line.startswith("element")]
    if [element[1] for element in elements] != ["vertex"]:
        raise ConversionError(f"Could not read PLY {path}: expected one vertex element, got "
                              f"{[element[1] for element in elements]}")
    types = {name: dtype for dtype, name in _PLY_TYPES.items()}
    properties = [line.split() for line in lines if line.startswith("property")]
    unknown = sorted({words[1] for words in properties if words[1] not in types})
    if unknown:
        raise ConversionError(f"Could not read PLY {path}: property types {', '.join(unknown)} are not supported")
    dtype = np.dtype([(words[2], types[words[1]]) for words in properties])
    count = int(elements[0][2])
    start = end + len("end_header\n")
    if len(data) - start < count * dtype.itemsize:
        raise ConversionError(f"Could not read PLY {path}: {count} vertices need {count * dtype.itemsize} bytes, "
                              f"got {len(data) - start}")
    return lines, np.frombuffer(data, dtype=dtype, count=count, offset=start)


def read_ply(path: str | Path) -> np.ndarray:
    """The vertex records of a PLY this module wrote (structured array), for checks and tests.

    Raises:
        ConversionError: not a readable binary little-endian PLY with one vertex element.
    """
    return _read(path)[1]


def read_map_ply(path: str | Path) -> VoxelMapState:
    """The exact map state a `write_ply` file keeps (give it to VoxelMap.restore).

    Raises:
        ConversionError: an unreadable file, or a PLY without the map state (another writer, or
            a version of this package that did not keep it).
    """
    lines, vertices = _read(path)
    comments = dict(line[len(_COMMENT):].split(" ", 1) for line in lines if line.startswith(_COMMENT))
    missing = [name for name in _INDICES + _SUMS + _M2 + ("last_seen",) if name not in (vertices.dtype.names or ())]
    missing += [name for name in ("voxel_size", "tick") if name not in comments]
    if missing:
        raise ConversionError(f"PLY {path} does not keep a voxel map's state: it lacks {', '.join(missing[:4])}"
                              f"{' ...' if len(missing) > 4 else ''} (only maps saved by this version resume)")
    try:
        voxel_size, tick = float(comments["voxel_size"]), int(comments["tick"])
    except ValueError as err:
        raise ConversionError(f"PLY {path} has an unreadable voxel_size or tick comment: {err}") from None

    def stack(names: tuple[str, ...], dtype: str) -> np.ndarray:
        return np.stack([vertices[name] for name in names], axis=1).astype(dtype).reshape(len(vertices), len(names))

    return VoxelMapState(voxel_size=voxel_size, tick=tick, indices=stack(_INDICES, "i4"), sums=stack(_SUMS, "f8"),
                         m2=stack(_M2, "f8"), views=vertices["view_count"].astype(np.uint32),
                         last_seen=vertices["last_seen"].astype(np.int64))
