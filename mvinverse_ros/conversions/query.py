"""srv/QueryMaterials request and response fields <-> numpy (geometry.query.query_materials).

The service's request and response objects are made by the client library (the node fills the
response it is handed), so the response side is a dict of field values: `Response(**fields)` or
setattr for each item.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mvinverse_ros.conversions.factory import MessageFactory
from mvinverse_ros.types import MaterialQuery


def request_points(request: Any) -> np.ndarray:
    """(M, 3) float64 points of a QueryMaterials request (geometry_msgs/Point[])."""
    return np.array([(p.x, p.y, p.z) for p in request.points], dtype=np.float64).reshape(-1, 3)


def query_response_fields(factory: MessageFactory, query: MaterialQuery) -> dict[str, Any]:
    """Every field of a successful QueryMaterials response, one entry per queried point."""
    def colors(rgb: np.ndarray, alpha: float) -> list[Any]:
        return [factory.new("std_msgs/msg/ColorRGBA", r=float(r), g=float(g), b=float(b), a=alpha) for r, g, b in rgb]

    return {
        "success": True,
        "message": "",
        "found": factory.array(query.found.astype(bool)),
        "distance": factory.array(query.distance.astype(np.float64)),
        "albedo": colors(query.albedo, 1.0),
        "albedo_std": colors(query.albedo_std, 0.0),
        "roughness": factory.array(query.roughness.astype(np.float32)),
        "roughness_std": factory.array(query.roughness_std.astype(np.float32)),
        "metallic": factory.array(query.metallic.astype(np.float32)),
        "metallic_std": factory.array(query.metallic_std.astype(np.float32)),
        "specular": factory.array(query.specular.astype(np.float32)),
        "normal": [factory.new("geometry_msgs/msg/Vector3", x=float(x), y=float(y), z=float(z))
                   for x, y, z in query.normal],
        "view_count": factory.array(query.view_count.astype(np.uint32)),
    }
