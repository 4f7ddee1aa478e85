"""What a manipulation planner asks of the fused map: the materials at given points.

The ROS-free core of the node's QueryMaterials service: points in any frame are moved into the
map's fixed frame, each is matched to the voxel whose mean position is nearest (a k-d tree over
the cloud), and the voxel's means, spreads, specular cue and view count come back with its
normal rotated into the points' frame.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from mvinverse_ros.geometry.transforms import invert, rotate_vectors, transform_points
from mvinverse_ros.types import MaterialCloud, MaterialQuery


def query_materials(cloud: MaterialCloud, points: np.ndarray, radius: float,
                    request_to_fixed: np.ndarray | None = None) -> MaterialQuery:
    """The materials of the voxel nearest to each point, if it lies within `radius`.

    Args:
        cloud: the fused map (VoxelMap.cloud() or a decoded cloud message), in the fixed frame.
        points: (M, 3) query points in the request frame.
        radius: metres; a point farther than this from every voxel mean is not found.
        request_to_fixed: 4x4 pose of the request frame in the fixed frame (None: the points are
            in the fixed frame). Returned normals are rotated into the request frame.

    Raises:
        ValueError: a negative or NaN radius, or points that are not (M, 3).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"query points must be (M, 3), got shape {points.shape}")
    if not radius >= 0:
        raise ValueError(f"query radius must be >= 0 metres, got {radius}")
    request_to_fixed = np.eye(4) if request_to_fixed is None else np.asarray(request_to_fixed, dtype=np.float64)
    in_fixed = transform_points(request_to_fixed, points)
    count = len(points)
    distance, index = np.full(count, np.inf), np.zeros(count, dtype=np.intp)
    if len(cloud) and count:
        # The bound prunes the search; cKDTree keeps only distances strictly below it.
        distance, index = cKDTree(cloud.points.astype(np.float64)).query(
            in_fixed, k=1, distance_upper_bound=np.nextafter(radius, np.inf))
    found = distance <= radius
    index = np.where(found, index, 0)

    def pick(values: np.ndarray, missing: float = np.nan) -> np.ndarray:
        if not len(cloud):
            return np.full((count,) + values.shape[1:], missing, dtype=values.dtype)
        chosen = values[index]
        chosen[~found] = missing
        return chosen

    normal = pick(cloud.normal)
    return MaterialQuery(
        found=found, distance=distance, albedo=pick(cloud.albedo), albedo_std=pick(cloud.albedo_std),
        roughness=pick(cloud.roughness), roughness_std=pick(cloud.roughness_std), metallic=pick(cloud.metallic),
        metallic_std=pick(cloud.metallic_std), specular=pick(cloud.specular),
        normal=rotate_vectors(invert(request_to_fixed), normal), view_count=pick(cloud.view_count, 0),
    )
