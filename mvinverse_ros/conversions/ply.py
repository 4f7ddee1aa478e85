"""The fused material cloud as a binary little-endian PLY file (every attribute as a property).

Viewers (MeshLab, CloudCompare, Open3D) read x/y/z, nx/ny/nz and red/green/blue; the material
properties travel as extra float properties.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mvinverse_ros.bag.errors import BagError
from mvinverse_ros.types import MaterialCloud

_PLY_TYPES = {np.dtype("<f4"): "float", np.dtype("u1"): "uchar", np.dtype("<u4"): "uint"}


def cloud_vertices(cloud: MaterialCloud) -> np.ndarray:
    """One structured little-endian record per point, in the cloud's order."""
    albedo8 = np.clip(np.rint(cloud.albedo * 255.0), 0, 255).astype(np.uint8)
    columns = [
        ("x", cloud.points[:, 0]), ("y", cloud.points[:, 1]), ("z", cloud.points[:, 2]),
        ("nx", cloud.normal[:, 0]), ("ny", cloud.normal[:, 1]), ("nz", cloud.normal[:, 2]),
        ("red", albedo8[:, 0]), ("green", albedo8[:, 1]), ("blue", albedo8[:, 2]),
        ("albedo_r", cloud.albedo[:, 0]), ("albedo_g", cloud.albedo[:, 1]), ("albedo_b", cloud.albedo[:, 2]),
        ("roughness", cloud.roughness), ("metallic", cloud.metallic),
        ("shading_r", cloud.shading[:, 0]), ("shading_g", cloud.shading[:, 1]), ("shading_b", cloud.shading[:, 2]),
        ("view_count", cloud.view_count),
    ]
    dtypes = {"red": "u1", "green": "u1", "blue": "u1", "view_count": "<u4"}
    vertices = np.empty(len(cloud), dtype=[(name, dtypes.get(name, "<f4")) for name, _ in columns])
    for name, values in columns:
        vertices[name] = values
    return vertices


def write_ply(path: str | Path, cloud: MaterialCloud) -> None:
    """Write `cloud` to `path`.

    Raises:
        BagError: the file cannot be written.
    """
    vertices = cloud_vertices(cloud)
    header = ["ply", "format binary_little_endian 1.0", "comment mvinverse_ros fused material cloud",
              f"element vertex {len(vertices)}"]
    header += [f"property {_PLY_TYPES[vertices.dtype[name]]} {name}" for name in vertices.dtype.names]
    header.append("end_header")
    try:
        with open(path, "wb") as stream:
            stream.write(("\n".join(header) + "\n").encode("ascii"))
            stream.write(vertices.tobytes())
    except OSError as err:
        raise BagError(f"Could not write PLY {path}: {err}") from err


def read_ply(path: str | Path) -> np.ndarray:
    """The vertex records of a PLY this module wrote (structured array), for checks and tests.

    Raises:
        BagError: not a binary little-endian PLY with one vertex element.
    """
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise BagError(f"Could not read PLY {path}: no PLY header")
    lines = data[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise BagError(f"Could not read PLY {path}: only binary_little_endian is supported")
    count = next(int(line.split()[2]) for line in lines if line.startswith("element vertex"))
    names = {v: k for k, v in _PLY_TYPES.items()}
    dtype = [(line.split()[2], names[line.split()[1]]) for line in lines if line.startswith("property")]
    return np.frombuffer(data, dtype=dtype, count=count, offset=end + len("end_header\n"))
