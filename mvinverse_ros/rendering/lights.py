"""Inserted light sources: point, spot and directional, with colour and power.

Units: radiance comes out in the units of the network's linear shading, taking 1 W/m^2 of
irradiance as shading 1/pi on a white Lambertian surface. A point light of P watts radiates
P / (4 pi) W/sr evenly (inverse-square falloff); a spot light is that point light masked to a cone;
a directional light (sun) gives a constant irradiance. No light casts shadows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mvinverse_ros.geometry.transforms import rotate_vectors, transform_points


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    norm = np.linalg.norm(vector)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"a light direction must be a non-zero vector, got {vector.tolist()}")
    return vector / norm


@dataclass(frozen=True)
class PointLight:
    """Isotropic point source.

    Attributes:
        position: (3,) metres in the frame the light is given in.
        colour: (3,) linear RGB weights.
        watts: radiant power.
    """

    position: np.ndarray
    colour: np.ndarray
    watts: float

    def moved(self, transform: np.ndarray) -> "PointLight":
        """The same light with its position in another frame (`transform` maps old to new coordinates)."""
        return PointLight(transform_points(transform, np.reshape(self.position, (1, 3)))[0], self.colour, self.watts)

    def arrival(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit directions (N, 3) from `points` (N, 3) towards the light and the irradiance (N, 3) facing it."""
        offset = np.asarray(self.position, dtype=points.dtype) - points
        distance2 = np.maximum(np.sum(offset * offset, axis=1), 1e-12)
        direction = offset / np.sqrt(distance2)[:, None]
        intensity = (np.asarray(self.colour, dtype=np.float64) * self.watts / (4.0 * np.pi)).astype(points.dtype)
        return direction, intensity[None, :] / distance2[:, None]


@dataclass(frozen=True)
class SpotLight:
    """A point source lighting only a cone, with a smooth edge.

    Attributes:
        position: (3,) metres.
        direction: (3,) unit axis of the cone (where the light points).
        colour: (3,) linear RGB weights.
        watts: power the same source would radiate in every direction (so a spot is as bright as
            a point light of equal watts inside its cone).
        cone_deg: half-angle where the light ends.
        falloff_deg: width of the smooth edge inside the cone.
    """

    position: np.ndarray
    direction: np.ndarray
    colour: np.ndarray
    watts: float
    cone_deg: float = 30.0
    falloff_deg: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", _unit(self.direction))
        if not 0 < self.cone_deg < 180 or not 0 <= self.falloff_deg <= self.cone_deg:
            raise ValueError(f"spot cone must satisfy 0 < falloff {self.falloff_deg} <= cone {self.cone_deg} < 180 deg")

    def moved(self, transform: np.ndarray) -> "SpotLight":
        """The same light in another frame (`transform` maps old to new coordinates)."""
        return SpotLight(transform_points(transform, np.reshape(self.position, (1, 3)))[0],
                         rotate_vectors(transform, np.reshape(self.direction, (1, 3)))[0], self.colour, self.watts,
                         self.cone_deg, self.falloff_deg)

    def arrival(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like PointLight.arrival, times a smoothstep from the cone's edge inwards."""
        direction, irradiance = PointLight(self.position, self.colour, self.watts).arrival(points)
        off_axis = np.degrees(np.arccos(np.clip(-direction @ self.direction, -1.0, 1.0)))
        edge = np.clip((self.cone_deg - off_axis) / max(self.falloff_deg, 1e-9), 0.0, 1.0)
        return direction, irradiance * (edge * edge * (3.0 - 2.0 * edge))[:, None]


@dataclass(frozen=True)
class DirectionalLight:
    """A distant source (sun): parallel rays and the same irradiance everywhere.

    Attributes:
        direction: (3,) unit direction the light travels in.
        colour: (3,) linear RGB weights.
        irradiance: W/m^2 on a surface facing the light.
    """

    direction: np.ndarray
    colour: np.ndarray
    irradiance: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", _unit(self.direction))

    def moved(self, transform: np.ndarray) -> "DirectionalLight":
        """The same light in another frame (`transform` maps old to new coordinates)."""
        return DirectionalLight(rotate_vectors(transform, np.reshape(self.direction, (1, 3)))[0], self.colour,
                                self.irradiance)

    def arrival(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like PointLight.arrival: the same direction and irradiance at every point."""
        count = points.shape[0]
        irradiance = (np.asarray(self.colour, dtype=np.float64) * self.irradiance).astype(points.dtype)
        return (np.broadcast_to(-self.direction.astype(points.dtype), (count, 3)),
                np.broadcast_to(irradiance, (count, 3)))


Light = PointLight | SpotLight | DirectionalLight
