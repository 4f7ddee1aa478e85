"""Physically based BRDF of the metallic workflow: Lambert diffuse plus a GGX Cook-Torrance lobe.

Conventions (as in most real-time renderers, so the network's roughness/metallic maps mean what
artists expect): GGX alpha = roughness^2; separable Smith shadowing-masking with the exact GGX G1;
Schlick Fresnel; F0 = mix(0.04, albedo, metallic). The diffuse lobe is scaled by (1 - metallic) and
by (1 - F0), the energy the specular lobe reflects at normal incidence, so that a white dielectric
does not reflect more than it receives. All functions broadcast over leading axes; vectors are
unit length in any common frame.
"""
from __future__ import annotations

import numpy as np

DIELECTRIC_F0 = 0.04
"""Normal-incidence reflectance of common dielectrics (index of refraction about 1.5)."""

MIN_ROUGHNESS = 0.05
"""Roughness floor: a perfect mirror's GGX lobe is a delta no pixel can sample."""


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1)


def base_reflectance(albedo: np.ndarray, metallic: np.ndarray) -> np.ndarray:
    """F0 = mix(0.04, albedo, metallic): dielectrics reflect 4 % white, metals tint with their albedo.

    Args:
        albedo: (..., 3) base colour.
        metallic: (...) in [0, 1].
    """
    metallic = np.asarray(metallic)[..., None]
    return DIELECTRIC_F0 * (1.0 - metallic) + np.asarray(albedo) * metallic


def schlick_fresnel(f0: np.ndarray, cos_theta: np.ndarray) -> np.ndarray:
    """Schlick's approximation F0 + (1 - F0)(1 - cos)^5; `cos_theta` (...) broadcast over the colour axis."""
    weight = (1.0 - np.clip(cos_theta, 0.0, 1.0)) ** 5
    return f0 + (1.0 - f0) * weight[..., None]


def ggx_distribution(n_dot_h: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """GGX (Trowbridge-Reitz) normal distribution D(h), normalised so that the integral of D cos over h is 1."""
    a2 = alpha * alpha
    cos2 = np.clip(n_dot_h, 0.0, 1.0) ** 2
    denominator = cos2 * (a2 - 1.0) + 1.0
    return a2 / (np.pi * denominator * denominator)


def smith_g1(n_dot_x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Exact GGX Smith masking of one direction: 2 cos / (cos + sqrt(alpha^2 + (1 - alpha^2) cos^2))."""
    cos = np.clip(n_dot_x, 0.0, 1.0)
    a2 = alpha * alpha
    return 2.0 * cos / np.maximum(cos + np.sqrt(a2 + (1.0 - a2) * cos * cos), 1e-12)


def cook_torrance(normal: np.ndarray, view: np.ndarray, light: np.ndarray, albedo: np.ndarray,
                  roughness: np.ndarray, metallic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse and specular BRDF values (1/sr) for light arriving from `light` and leaving towards `view`.

    Both are zero where either direction is below the surface. Multiply their sum by the irradiance
    at normal incidence times cos(normal, light) to get reflected radiance.

    Args:
        normal, view, light: (..., 3) unit vectors; `view` and `light` point away from the surface.
        albedo: (..., 3) base colour in [0, 1].
        roughness, metallic: (...) in [0, 1].

    Returns:
        (diffuse, specular), each (..., 3).
    """
    albedo = np.asarray(albedo)
    metallic = np.asarray(metallic)
    alpha = np.maximum(np.asarray(roughness), MIN_ROUGHNESS) ** 2
    n_dot_l, n_dot_v = _dot(normal, light), _dot(normal, view)
    above = (n_dot_l > 0) & (n_dot_v > 0)
    half = view + light
    half = half / np.maximum(np.linalg.norm(half, axis=-1, keepdims=True), 1e-12)
    f0 = base_reflectance(albedo, metallic)
    fresnel = schlick_fresnel(f0, _dot(view, half))
    shadowing = smith_g1(n_dot_l, alpha) * smith_g1(n_dot_v, alpha)
    lobe = ggx_distribution(_dot(normal, half), alpha) * shadowing / np.maximum(4.0 * n_dot_l * n_dot_v, 1e-12)
    specular = fresnel * np.where(above, lobe, 0.0)[..., None]
    diffuse = (1.0 - metallic)[..., None] * (1.0 - f0) * albedo / np.pi * above[..., None]
    return diffuse, specular
