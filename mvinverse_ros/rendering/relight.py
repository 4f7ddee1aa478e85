"""Relighting: the frame's own predicted diffuse light, optionally dimmed, plus inserted lights.

A pixel's radiance is `dim * albedo * shading + sum over lights of (f_diffuse + f_specular) * E * cos`,
with the network's albedo, shading, roughness, metallic and normal and the pixel's position from
the registered depth. With no light and `dim` 1 this is exactly albedo * shading. The fused cloud
is relit the same way in the fixed frame and splatted into any camera with a z-buffer, so a light
placed in the fixed frame lights every view alike. Output is linear; encode with linear_to_srgb.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mvinverse_ros.geometry.camera import PixelPoints, project_points, unproject_depth
from mvinverse_ros.geometry.fusion import missing_fusion_inputs
from mvinverse_ros.geometry.normals import normalize
from mvinverse_ros.geometry.transforms import transform_points
from mvinverse_ros.rendering.brdf import cook_torrance
from mvinverse_ros.rendering.lights import Light
from mvinverse_ros.types import CameraModel, Frame, MaterialMaps, SurfacePoints

MAX_SPLAT_RADIUS = 4
"""Largest half-width in pixels of one cloud point's square splat (near points would cover more)."""


def lift_frame(frame: Frame, height: int, width: int) -> PixelPoints:
    """Optical-frame positions of the pixels with valid depth, on a height x width grid of the frame.

    Raises:
        ValueError: the frame lacks depth, calibration or pose.
    """
    missing = missing_fusion_inputs(frame)
    if missing:
        raise ValueError(f"frame at {frame.stamp_ns} ns has no {', '.join(missing)}")
    depth = frame.depth
    if depth.shape != (height, width):
        depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    return unproject_depth(depth, frame.camera)


def inserted_light(points: np.ndarray, normals: np.ndarray, eye: np.ndarray, albedo: np.ndarray,
                   roughness: np.ndarray, metallic: np.ndarray, lights: Sequence[Light]) -> np.ndarray:
    """Radiance (N, 3) towards `eye` that `lights` add to surface points, all in one frame.

    Args:
        points: (N, 3) positions.
        normals: (N, 3) unit normals.
        eye: (3,) camera centre.
        albedo: (N, 3) base colour.
        roughness: (N,) in [0, 1].
        metallic: (N,) in [0, 1].
        lights: sources given in the same frame as `points`.
    """
    points = np.asarray(points, dtype=np.float32)  # float32: half the memory traffic, ample for display
    view = normalize(np.asarray(eye, dtype=np.float32) - points)
    radiance = np.zeros_like(points)
    for light in lights:
        direction, irradiance = light.arrival(points)
        diffuse, specular = cook_torrance(normals, view, direction, albedo, roughness, metallic)
        cosine = np.clip(np.sum(normals * direction, axis=1), 0.0, None)
        radiance += (diffuse + specular) * irradiance * cosine[:, None]
    return radiance


def relight_frame(frame: Frame, maps: MaterialMaps, lights: Sequence[Light] = (), dim: float = 1.0,
                  albedo: np.ndarray | None = None) -> np.ndarray:
    """The frame relit: HxWx3 float32 linear radiance at the maps' resolution.

    Pixels without valid depth keep only the (dimmed) existing light.

    Args:
        frame: needs depth, camera and pose (in the lights' frame) when `lights` is not empty.
        maps: the network's maps for `frame`.
        lights: inserted sources in the fixed frame.
        dim: factor on the existing light (albedo * shading).
        albedo: HxWx3 albedo replacing maps.albedo (an edit), else the predicted one.

    Raises:
        ValueError: lights are given but the frame lacks depth, calibration or pose.
    """
    albedo = maps.albedo if albedo is None else albedo
    radiance = (dim * albedo * maps.shading).astype(np.float32)
    if not lights:
        return radiance
    height, width = albedo.shape[:2]
    lifted = lift_frame(frame, height, width)
    to_camera = np.linalg.inv(frame.camera_to_fixed)
    rows, cols = lifted.rows, lifted.cols
    radiance[rows, cols] += inserted_light(
        lifted.points, normalize(maps.normal[rows, cols].astype(np.float32)), np.zeros(3), albedo[rows, cols],
        maps.roughness[rows, cols], maps.metallic[rows, cols], [light.moved(to_camera) for light in lights])
    return radiance


def splat(points: np.ndarray, camera: CameraModel, point_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Nearest point per pixel of optical-frame `points` drawn as squares `point_size` metres wide.

    Args:
        points: (N, 3) in the camera's optical frame.
        camera: calibration at the output resolution.
        point_size: edge of each point's square in metres (the fusion voxel size closes the gaps).

    Returns:
        (pixel indices into the flattened HxW image, index of the point seen there), one per covered pixel.
    """
    uv, z = project_points(points, camera)
    with np.errstate(invalid="ignore"):
        ahead = np.flatnonzero(z > 1e-6)
    uv, z = uv[ahead], z[ahead]
    column, row = np.rint(uv[:, 0]).astype(np.int64), np.rint(uv[:, 1]).astype(np.int64)
    reach = np.clip(np.ceil(0.5 * point_size * camera.K[0, 0] / z - 0.5), 0, MAX_SPLAT_RADIUS).astype(np.int64)
    pixels, owners, depths = [], [], []
    span = int(reach.max(initial=0))
    for dy in range(-span, span + 1):
        for dx in range(-span, span + 1):
            r, c = row + dy, column + dx
            keep = np.flatnonzero((reach >= max(abs(dx), abs(dy))) & (r >= 0) & (r < camera.height)
                                  & (c >= 0) & (c < camera.width))
            pixels.append(r[keep] * camera.width + c[keep])
            owners.append(ahead[keep])
            depths.append(z[keep])
    pixel, owner, depth = np.concatenate(pixels), np.concatenate(owners), np.concatenate(depths)
    order = np.lexsort((depth, pixel))
    pixel, owner = pixel[order], owner[order]
    nearest = np.ones(pixel.shape[0], dtype=bool)
    nearest[1:] = pixel[1:] != pixel[:-1]
    return pixel[nearest], owner[nearest]


def render_cloud(cloud: SurfacePoints, camera: CameraModel, camera_to_fixed: np.ndarray, point_size: float,
                 lights: Sequence[Light] = (), dim: float = 1.0,
                 albedo: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The fused cloud relit in the fixed frame and seen from one camera.

    Args:
        cloud: the fused material cloud (or any material points) in the fixed frame.
        camera: calibration at the output resolution.
        camera_to_fixed: 4x4 pose of the camera's optical frame.
        point_size: splat size in metres (use the fusion voxel size).
        lights: inserted sources in the fixed frame.
        dim: factor on the existing light (albedo * shading).
        albedo: (N, 3) replacing cloud.albedo (an edit), else the fused one.

    Returns:
        (HxWx3 float32 linear radiance, HxW bool: pixels a point covers).
    """
    albedo = cloud.albedo if albedo is None else albedo
    pixel, owner = splat(transform_points(np.linalg.inv(camera_to_fixed), cloud.points), camera, point_size)
    seen, where = np.unique(owner, return_inverse=True)
    radiance = dim * albedo[seen].astype(np.float64) * cloud.shading[seen]
    if lights:
        radiance += inserted_light(cloud.points[seen], cloud.normal[seen].astype(np.float32), camera_to_fixed[:3, 3],
                                   albedo[seen], cloud.roughness[seen], cloud.metallic[seen], lights)
    image = np.zeros((camera.height * camera.width, 3), dtype=np.float32)
    image[pixel] = radiance[where]
    covered = np.zeros(camera.height * camera.width, dtype=bool)
    covered[pixel] = True
    return image.reshape(camera.height, camera.width, 3), covered.reshape(camera.height, camera.width)
