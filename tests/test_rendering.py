"""Analytic checks of the rendering room: Lambert falloff, GGX energy, metals, identity relight, z-buffer."""
from __future__ import annotations

import numpy as np
import pytest

from mvinverse_ros.rendering.brdf import DIELECTRIC_F0, base_reflectance, cook_torrance
from mvinverse_ros.rendering.edit import AlbedoEdit, Box, Sphere, edit_albedo
from mvinverse_ros.rendering.lights import DirectionalLight, PointLight, SpotLight
from mvinverse_ros.rendering.relight import relight_frame, render_cloud
from mvinverse_ros.types import CameraModel, Frame, MaterialMaps, SurfacePoints

UP = np.array([0.0, 0.0, 1.0])


def directional_albedo(view: np.ndarray, albedo, roughness: float, metallic: float, thetas: np.ndarray,
                       phis: np.ndarray) -> np.ndarray:
    """Reflected fraction (3,) of uniform unit radiance from the hemisphere, towards `view` (trapezoid rule)."""
    theta, phi = np.meshgrid(thetas, phis, indexing="ij")
    light = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1)
    diffuse, specular = cook_torrance(UP, view, light, np.asarray(albedo, float), np.full(theta.shape, roughness),
                                      np.full(theta.shape, metallic))
    integrand = (diffuse + specular) * (np.cos(theta) * np.sin(theta))[..., None]
    over_phi = np.trapezoid(integrand, phis, axis=1) if phis.size > 1 else 2 * np.pi * integrand[:, 0]
    return np.trapezoid(over_phi, thetas, axis=0)


def test_lambertian_plane_under_a_point_light_follows_cos_over_r_squared():
    xs, ys = np.meshgrid(np.linspace(-3, 3, 41), np.linspace(-2, 2, 27))
    points = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], axis=1)
    light = PointLight(np.array([0.4, -0.3, 1.5]), np.array([1.0, 0.5, 0.25]), watts=60.0)
    direction, irradiance = light.arrival(points)
    normal = np.broadcast_to(UP, points.shape)
    albedo = np.full(points.shape, 0.7)
    diffuse, _ = cook_torrance(normal, normal, direction, albedo, np.full(len(points), 0.8), np.zeros(len(points)))
    radiance = diffuse * irradiance * np.sum(normal * direction, axis=1)[:, None]
    offset = light.position - points
    r = np.linalg.norm(offset, axis=1)
    cos_theta = offset[:, 2] / r
    expected = (0.7 * (1 - DIELECTRIC_F0) / np.pi) * (light.colour * 60.0 / (4 * np.pi)) * (cos_theta / r ** 2)[:, None]
    np.testing.assert_allclose(radiance, expected, rtol=1e-12)


def test_white_smooth_dielectric_passes_the_white_furnace_at_normal_incidence():
    thetas = np.pi / 2 * np.linspace(0, 1, 400_001) ** 4  # dense where the narrow lobe is
    reflected = directional_albedo(UP, [1.0, 1.0, 1.0], roughness=0.05, metallic=0.0, thetas=thetas,
                                   phis=np.zeros(1))
    assert np.all(reflected <= 1.0) and np.all(reflected > 0.985), reflected


@pytest.mark.parametrize("roughness", [0.2, 0.5, 1.0])
def test_rough_dielectric_reflects_at_most_what_it_receives(roughness):
    thetas = np.pi / 2 * np.linspace(0, 1, 20_001) ** 2
    reflected = directional_albedo(UP, [1.0, 1.0, 1.0], roughness, 0.0, thetas, np.zeros(1))
    assert np.all(reflected <= 1.0) and np.all(reflected > 0.9), reflected


@pytest.mark.parametrize("view_deg", [0.0, 45.0, 75.0])
def test_white_metal_reflects_at_most_what_it_receives_from_any_view(view_deg):
    view = np.array([np.sin(np.radians(view_deg)), 0.0, np.cos(np.radians(view_deg))])
    reflected = directional_albedo(view, [1.0, 1.0, 1.0], 0.5, 1.0, np.linspace(0, np.pi / 2, 1501),
                                   np.linspace(-np.pi, np.pi, 721))
    assert np.all(reflected <= 1.0) and np.all(reflected > 0.7), reflected


def test_metal_reflects_its_albedo_as_specular_colour_and_no_diffuse():
    albedo = np.array([0.9, 0.5, 0.2])
    np.testing.assert_allclose(base_reflectance(albedo, np.array(1.0)), albedo)
    light = np.array([0.3, 0.0, 1.0]) / np.linalg.norm([0.3, 0.0, 1.0])
    view = np.array([-0.3, 0.0, 1.0]) / np.linalg.norm([-0.3, 0.0, 1.0])  # mirror pair: v.h = cos(16.7 deg)
    for v, l in ((UP, UP), (view, light)):
        diffuse, specular = cook_torrance(UP, v, l, albedo, np.array(0.4), np.array(1.0))
        np.testing.assert_array_equal(diffuse, 0.0)
        if v is UP:
            np.testing.assert_allclose(specular / specular[0], albedo / albedo[0], rtol=1e-12)
        assert np.all(specular > 0)


def test_spot_is_a_point_light_inside_its_cone_and_dark_outside():
    spot = SpotLight(np.zeros(3), np.array([0.0, 0.0, 2.0]), np.ones(3), 40.0, cone_deg=30.0, falloff_deg=5.0)
    point = PointLight(np.zeros(3), np.ones(3), 40.0)
    points = np.array([[0.0, 0.0, 1.0], [np.tan(np.radians(20)), 0.0, 1.0], [np.tan(np.radians(35)), 0.0, 1.0]])
    _, lit = spot.arrival(points)
    _, reference = point.arrival(points)
    np.testing.assert_allclose(lit[:2], reference[:2])
    np.testing.assert_array_equal(lit[2], 0.0)
    sun = DirectionalLight(np.array([0.0, 0.0, -3.0]), np.array([1.0, 0.9, 0.8]), 2.0)
    direction, irradiance = sun.arrival(points)
    np.testing.assert_allclose(direction, np.broadcast_to(UP, (3, 3)))
    np.testing.assert_allclose(irradiance, np.broadcast_to([2.0, 1.8, 1.6], (3, 3)))


def plane_scene(height: int = 24, width: int = 32, depth: float = 2.0):
    """A fronto-parallel plane seen by a camera at the origin (pose identity) with random materials."""
    rng = np.random.default_rng(3)
    camera = CameraModel(width, height, np.array([[30.0, 0, (width - 1) / 2], [0, 30.0, (height - 1) / 2], [0, 0, 1]]))
    normal = np.zeros((height, width, 3), np.float32)
    normal[..., 2] = -1.0
    maps = MaterialMaps(rng.uniform(0, 1, (height, width, 3)).astype(np.float32),
                        rng.uniform(0, 1, (height, width)).astype(np.float32),
                        rng.uniform(0, 1, (height, width)).astype(np.float32), normal,
                        rng.uniform(0, 1, (height, width, 3)).astype(np.float32))
    depth_map = np.full((height, width), depth, np.float32)
    depth_map[0, :5] = np.nan
    frame = Frame(0, "cam", np.zeros((height, width, 3), np.uint8), camera, depth_map, np.eye(4))
    return frame, maps


def test_no_inserted_light_and_no_dimming_reproduces_albedo_times_shading():
    frame, maps = plane_scene()
    np.testing.assert_array_equal(relight_frame(frame, maps), maps.albedo * maps.shading)
    frameless = Frame(0, "cam", frame.image)  # no depth or pose needed without lights
    np.testing.assert_array_equal(relight_frame(frameless, maps, dim=0.5), 0.5 * maps.albedo * maps.shading)


def test_inserted_light_adds_light_only_where_depth_is_valid_and_needs_geometry():
    frame, maps = plane_scene()
    light = PointLight(np.array([0.0, 0.0, 0.5]), np.ones(3), 50.0)
    relit = relight_frame(frame, maps, [light], dim=0.0)
    np.testing.assert_array_equal(relit[0, :5], 0.0)
    assert np.all(relit[1:] > 0)
    with pytest.raises(ValueError, match="no depth"):
        relight_frame(Frame(0, "cam", frame.image), maps, [light])


def test_cloud_splat_keeps_the_nearest_surface_and_relights_like_the_frame():
    height, width = 24, 32
    camera = CameraModel(width, height, np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]]))
    xs, ys = np.meshgrid(np.linspace(-1.5, 1.5, 61), np.linspace(-1.2, 1.2, 49))
    near = np.stack([xs.ravel() * 0.2, ys.ravel() * 0.2, np.full(xs.size, 1.0)], axis=1)
    far = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 2.0)], axis=1)
    points = np.concatenate([far, near]).astype(np.float32)
    count = len(points)
    albedo = np.concatenate([np.tile([0.0, 0.0, 1.0], (len(far), 1)), np.tile([1.0, 0.0, 0.0], (len(near), 1))])
    cloud = SurfacePoints(points=points, albedo=albedo.astype(np.float32),
                          normal=np.tile([0.0, 0.0, -1.0], (count, 1)).astype(np.float32),
                          roughness=np.full(count, 0.5, np.float32), metallic=np.zeros(count, np.float32),
                          shading=np.full((count, 3), 0.5, np.float32))
    image, covered = render_cloud(cloud, camera, np.eye(4), point_size=0.05)
    assert covered.all()
    centre, corner = image[height // 2, width // 2], image[0, 0]
    np.testing.assert_allclose(centre, [0.5, 0.0, 0.0])  # the near red plane hides the far blue one
    np.testing.assert_allclose(corner, [0.0, 0.0, 0.5])
    light = PointLight(np.array([0.0, 0.0, 0.0]), np.ones(3), 10.0)
    lit, _ = render_cloud(cloud, camera, np.eye(4), 0.05, [light], dim=0.0)
    assert lit[height // 2, width // 2, 0] > lit[0, 0, 2] > 0


def test_edits_paint_inside_their_region_only_and_textures_map_planarly():
    points = np.array([[0.0, 0.0, 0.0], [0.9, 0.5, 0.1], [2.0, 0.0, 0.0], [0.1, 0.1, 0.1]])
    albedo = np.full((4, 3), 0.5, np.float32)
    texture = np.zeros((2, 2, 3), np.float32)
    texture[:, 1] = 1.0  # right half white along the box's longest axis (x)
    edits = [AlbedoEdit(Box(np.array([0.0, 0.0, 0.0]), np.array([1.0, 0.5, 0.2])), texture=texture),
             AlbedoEdit(Sphere(np.array([0.1, 0.1, 0.1]), 0.05), colour=np.array([1.0, 0.0, 0.0]))]
    edited = edit_albedo(points, albedo, edits)
    np.testing.assert_array_equal(edited, [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 0]])
    with pytest.raises(ValueError, match="exactly one"):
        AlbedoEdit(Sphere(np.zeros(3), 1.0))
