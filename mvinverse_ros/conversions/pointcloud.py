"""sensor_msgs/PointCloud2 layout of the fused material cloud, packing and the generic reader.

Point layout (little-endian, point_step 64, is_dense false, height 1):

| offset | field         | type    | meaning                                                             |
|--------|---------------|---------|---------------------------------------------------------------------|
| 0      | x, y, z       | FLOAT32 | voxel mean position in the fixed frame, metres                      |
| 12     | rgb           | FLOAT32 | mean albedo 0x00RRGGBB bits read as float32 (RViz / PCL packing)    |
| 16     | normal_x..    | FLOAT32 | unit normal in the fixed frame (3 fields)                           |
| 28     | curvature     | FLOAT32 | always 0 (not estimated); lets pcl::PointXYZRGBNormal map every field |
| 32     | roughness     | FLOAT32 | mean roughness in [0, 1]                                            |
| 36     | metallic      | FLOAT32 | mean metallic in [0, 1]                                             |
| 40     | shading       | FLOAT32 | luminance of the mean diffuse shading (Rec. 709 weights)            |
| 44     | view_count    | UINT32  | number of fused frames that saw the voxel                           |
| 48     | roughness_std | FLOAT32 | standard deviation of roughness over the voxel's points             |
| 52     | metallic_std  | FLOAT32 | standard deviation of metallic over the voxel's points              |
| 56     | albedo_std    | FLOAT32 | root mean square over r, g, b of the albedo standard deviations     |
| 60     | specular      | FLOAT32 | cue in [0, 1] that depth is unreliable (metal or glossy), see below |

Standard deviations are over every point (pixel) fused into the voxel, from all frames,
divided by the number of points (0 for a single point); with `view_count` they say how far a
planner can trust the means. `specular` is geometry.fusion.specular_cue of the mean roughness
and metallic: 1 - (1 - metallic) * (1 - (1 - roughness)**2), high where structured-light,
time-of-flight and stereo depth tend to fail, so a planner that relies on depth can down-weight
those points. PCL and RViz find fields by name, so the order beyond x, y, z is free.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mvinverse_ros.conversions.errors import ConversionError
from mvinverse_ros.conversions.factory import MessageFactory
from mvinverse_ros.conversions.images import payload
from mvinverse_ros.types import MaterialCloud

# sensor_msgs/PointField datatype constants and their numpy types.
POINT_FIELD_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
FLOAT32, UINT32 = 7, 6

CLOUD_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32), ("rgb", 12, FLOAT32),
    ("normal_x", 16, FLOAT32), ("normal_y", 20, FLOAT32), ("normal_z", 24, FLOAT32),
    ("curvature", 28, FLOAT32), ("roughness", 32, FLOAT32), ("metallic", 36, FLOAT32),
    ("shading", 40, FLOAT32), ("view_count", 44, UINT32), ("roughness_std", 48, FLOAT32),
    ("metallic_std", 52, FLOAT32), ("albedo_std", 56, FLOAT32), ("specular", 60, FLOAT32),
)
POINT_STEP = 64
LUMINANCE_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

CLOUD_DTYPE = np.dtype({
    "names": [name for name, _, _ in CLOUD_FIELDS],
    "formats": ["<" + POINT_FIELD_DTYPES[datatype] for _, _, datatype in CLOUD_FIELDS],
    "offsets": [offset for _, offset, _ in CLOUD_FIELDS],
    "itemsize": POINT_STEP,
})


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) colours in [0, 1] to (N,) float32 whose bits are 0x00RRGGBB."""
    q = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint32)
    return ((q[:, 0] << 16) | (q[:, 1] << 8) | q[:, 2]).astype("<u4").view("<f4")


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(N,) packed float32 rgb to (N, 3) uint8."""
    bits = np.ascontiguousarray(packed, dtype="<f4").view("<u4")
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF], axis=1).astype(np.uint8)


def pack_cloud(cloud: MaterialCloud) -> np.ndarray:
    """The cloud as a structured array of CLOUD_DTYPE (its bytes are the PointCloud2 data)."""
    points = np.zeros(len(cloud), dtype=CLOUD_DTYPE)
    for axis, name in enumerate("xyz"):
        points[name] = cloud.points[:, axis]
        points[f"normal_{name}"] = cloud.normal[:, axis]
    points["rgb"] = pack_rgb(cloud.albedo)
    points["roughness"] = cloud.roughness
    points["metallic"] = cloud.metallic
    points["shading"] = np.einsum("nc,c->n", cloud.shading, LUMINANCE_WEIGHTS)
    points["view_count"] = cloud.view_count
    points["roughness_std"] = cloud.roughness_std
    points["metallic_std"] = cloud.metallic_std
    points["albedo_std"] = np.sqrt(np.mean(np.square(cloud.albedo_std, dtype=np.float64), axis=1))
    points["specular"] = cloud.specular
    return points


def cloud_msg(factory: MessageFactory, cloud: MaterialCloud, header: Any) -> Any:
    """PointCloud2 (height 1, unordered, is_dense false) of the fused cloud in `header.frame_id`."""
    fields = [factory.new("sensor_msgs/msg/PointField", name=name, offset=offset, datatype=datatype, count=1)
              for name, offset, datatype in CLOUD_FIELDS]
    data = pack_cloud(cloud).view(np.uint8).reshape(-1)
    return factory.new(
        "sensor_msgs/msg/PointCloud2", header=header, height=1, width=len(cloud), fields=fields,
        is_bigendian=False, point_step=POINT_STEP, row_step=POINT_STEP * len(cloud),
        data=factory.array(data), is_dense=False,
    )


def read_points(msg: Any) -> np.ndarray:
    """Every point of any PointCloud2 as a structured array with one entry per field name.

    Honours offsets, datatypes, counts (as sub-arrays), point_step, row_step and endianness.

    Raises:
        ConversionError: an unknown datatype, or data shorter than the layout needs.
    """
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in POINT_FIELD_DTYPES:
            raise ConversionError(f"PointCloud2 field {f.name!r} has unknown datatype {f.datatype}")
        names.append(f.name)
        base = order + POINT_FIELD_DTYPES[f.datatype]
        formats.append(base if f.count <= 1 else (base, (int(f.count),)))
        offsets.append(int(f.offset))
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})
    height, width, row_step = int(msg.height), int(msg.width), int(msg.row_step)
    data = payload(msg.data)
    if row_step < width * dtype.itemsize or data.size < row_step * height:
        raise ConversionError(f"PointCloud2 {width}x{height} with point_step {msg.point_step} and row_step "
                              f"{row_step} needs {row_step * height} bytes, got {data.size}")
    rows = data[: row_step * height].reshape(height, row_step)[:, : width * dtype.itemsize]
    return np.ascontiguousarray(rows).view(dtype).reshape(-1)


def cloud_from_msg(msg: Any) -> MaterialCloud:
    """The MaterialCloud a `cloud_msg` carries.

    Albedo comes back 8-bit quantised; shading and albedo_std come back as one value repeated in
    all three channels (luminance, root mean square).

    Raises:
        ConversionError: a cloud lacking one of this package's fields.
    """
    points = read_points(msg)
    missing = [name for name, _, _ in CLOUD_FIELDS if name not in (points.dtype.names or ())]
    if missing:
        raise ConversionError(f"PointCloud2 is not a material cloud: it lacks {', '.join(missing)}")

    def column(*names: str) -> np.ndarray:
        return np.stack([points[n].astype(np.float32) for n in names], axis=1)

    return MaterialCloud(
        points=column("x", "y", "z"),
        albedo=unpack_rgb(points["rgb"]).astype(np.float32) / np.float32(255.0),
        normal=column("normal_x", "normal_y", "normal_z"),
        roughness=points["roughness"].astype(np.float32),
        metallic=points["metallic"].astype(np.float32),
        shading=column("shading", "shading", "shading"),
        view_count=points["view_count"].astype(np.uint32),
        albedo_std=column("albedo_std", "albedo_std", "albedo_std"),
        roughness_std=points["roughness_std"].astype(np.float32),
        metallic_std=points["metallic_std"].astype(np.float32),
        specular=points["specular"].astype(np.float32),
    )
