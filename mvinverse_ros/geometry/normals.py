"""Normal vectors between the network's convention, the REP 103 optical frame and the fixed frame.

REP 103 camera optical frame: x right, y down, z forward (the 'opencv' convention). The
'opengl' convention (x right, y up, z backward) differs by a 180 degree turn about x.
"""
from __future__ import annotations

import numpy as np

from mvinverse_ros.geometry.transforms import rotate_vectors

CONVENTIONS = ("opencv", "opengl")

# Axis signs taking a normal from each convention into the optical frame.
_TO_OPTICAL = {"opencv": np.array([1.0, 1.0, 1.0]), "opengl": np.array([1.0, -1.0, -1.0])}


def to_optical(normals: np.ndarray, convention: str) -> np.ndarray:
    """Normals (..., 3) expressed in `convention` re-expressed in the REP 103 optical frame.

    Raises:
        ValueError: an unknown convention name.
    """
    try:
        signs = _TO_OPTICAL[convention]
    except KeyError:
        expected = ", ".join(CONVENTIONS)
        raise ValueError(f"unknown normal convention {convention!r}; expected one of {expected}") from None
    normals = np.asarray(normals)
    return (normals * signs).astype(normals.dtype if np.issubdtype(normals.dtype, np.floating) else np.float32)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors along (..., 3) `vectors`; zero-length ones become NaN (no direction)."""
    vectors = np.asarray(vectors)
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, vectors / norm, np.nan).astype(vectors.dtype)


def rotate_to_fixed(normals_optical: np.ndarray, camera_to_fixed: np.ndarray) -> np.ndarray:
    """Optical-frame normals (N, 3) expressed in the fixed frame (rotation part of the pose only)."""
    return rotate_vectors(camera_to_fixed, normals_optical)
