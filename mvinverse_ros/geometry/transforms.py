"""Rigid transforms as 4x4 matrices, and an offline TF buffer that answers like tf2.

Conventions: `T_a_b` is the pose of frame b in frame a; it maps points from b to a
(`p_a = T_a_b @ p_b`). A tf edge parent -> child (TransformStamped header.frame_id = parent,
child_frame_id = child) stores T_parent_child. Quaternions are (x, y, z, w) as in
geometry_msgs; all rotation maths goes through scipy.spatial.transform.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

NS_PER_SECOND = 1_000_000_000


def matrix_from_translation_quaternion(translation, quaternion_xyzw) -> np.ndarray:
    """4x4 T from a translation (x, y, z) and a quaternion (x, y, z, w), normalised first.

    Raises:
        ValueError: a zero-norm or non-finite quaternion.
    """
    q = np.asarray(quaternion_xyzw, dtype=np.float64)
    if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) == 0.0:
        raise ValueError(f"quaternion (x, y, z, w) must be 4 finite values with non-zero norm, got {q}")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(q).as_matrix()
    T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T


def translation_quaternion_from_matrix(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(translation (3,), quaternion (x, y, z, w) (4,)) of a rigid 4x4."""
    T = np.asarray(T, dtype=np.float64)
    return T[:3, 3].copy(), Rotation.from_matrix(T[:3, :3]).as_quat()


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 (R^T, -R^T t), exact for rotations unlike np.linalg.inv."""
    T = np.asarray(T, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def compose(*transforms: np.ndarray) -> np.ndarray:
    """Left-to-right product of 4x4 transforms, so that T_a_b then T_b_c gives T_a_c."""
    out = np.eye(4)
    for T in transforms:
        out = out @ np.asarray(T, dtype=np.float64)
    return out


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 3) mapped by T (float64 maths, result in the input's float dtype).

    einsum rather than `@`: for (N, 3) x (3, 3) it skips BLAS threading and is several times faster.
    """
    T = np.asarray(T, dtype=np.float64)
    points = np.asarray(points)
    out = np.einsum("ij,nj->ni", T[:3, :3], points.astype(np.float64)) + T[:3, 3]
    return out.astype(points.dtype if np.issubdtype(points.dtype, np.floating) else np.float64)


def rotate_vectors(T: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Directions (N, 3) rotated by T's rotation only (normals, axes)."""
    R = np.asarray(T, dtype=np.float64)[:3, :3]
    vectors = np.asarray(vectors)
    return np.einsum("ij,nj->ni", R, vectors.astype(np.float64)).astype(vectors.dtype)


def interpolate(T0: np.ndarray, T1: np.ndarray, alpha: float) -> np.ndarray:
    """Pose at fraction `alpha` from T0 (0) to T1 (1): linear translation, slerp rotation."""
    T0 = np.asarray(T0, dtype=np.float64)
    T1 = np.asarray(T1, dtype=np.float64)
    rotations = Rotation.from_matrix(np.stack([T0[:3, :3], T1[:3, :3]]))
    out = np.eye(4)
    out[:3, :3] = Slerp([0.0, 1.0], rotations)([alpha]).as_matrix()[0]
    out[:3, 3] = (1.0 - alpha) * T0[:3, 3] + alpha * T1[:3, 3]
    return out


def rotation_angle(T: np.ndarray) -> float:
    """Angle in radians of T's rotation (how far a pose turned)."""
    return float(Rotation.from_matrix(np.asarray(T, dtype=np.float64)[:3, :3]).magnitude())


class TransformError(LookupError):
    """A transform the buffer cannot give; subclasses say why (like tf2's exceptions)."""


class FrameNotFoundError(TransformError):
    """A frame that no transform in the buffer mentions."""


class ConnectivityError(TransformError):
    """Both frames are known but lie in disconnected trees."""


class ExtrapolationError(TransformError):
    """The stamp lies outside the stored history of an edge on the path."""


def _format_stamp(stamp_ns: int) -> str:
    return f"{stamp_ns / NS_PER_SECOND:.9f} s"


@dataclass
class _Edge:
    """History of one parent -> child transform; static edges hold one timeless sample."""

    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    matrices: list[np.ndarray] = field(default_factory=list)

    def at(self, stamp_ns: int, child: str) -> np.ndarray:
        if self.static:
            return self.matrices[0]
        i = bisect.bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            return self.matrices[i]
        if i == 0 or i == len(self.stamps):
            raise ExtrapolationError(
                f"Lookup of {self.parent} -> {child} at {_format_stamp(stamp_ns)} would extrapolate: "
                f"data covers {_format_stamp(self.stamps[0])} .. {_format_stamp(self.stamps[-1])}"
            )
        t0, t1 = self.stamps[i - 1], self.stamps[i]
        return interpolate(self.matrices[i - 1], self.matrices[i], (stamp_ns - t0) / (t1 - t0))


class TransformBuffer:
    """Offline tf2 buffer: a tree of static and stamped transforms answering `lookup`.

    Each child frame has one parent (a new parent replaces the child's history, as a tf tree
    cannot hold two). Dynamic edges keep samples within `cache_seconds` of their newest sample
    (tf2's cache horizon) and interpolate between them; static edges are timeless.
    """

    def __init__(self, cache_seconds: float = 10.0):
        self.cache_ns = int(cache_seconds * NS_PER_SECOND)
        self._edges: dict[str, _Edge] = {}
        self.counters = {"samples": 0, "too_old": 0}

    def clear(self) -> None:
        """Forget every transform (on a bag loop or a backwards clock)."""
        self._edges.clear()
        for key in self.counters:
            self.counters[key] = 0

    def frames(self) -> set[str]:
        """Every frame named by a stored edge."""
        return set(self._edges) | {e.parent for e in self._edges.values()}

    def set_transform(self, parent: str, child: str, stamp_ns: int, T_parent_child: np.ndarray,
                      static: bool = False) -> bool:
        """Store the pose of `child` in `parent` at `stamp_ns`; False if older than the horizon.

        Raises:
            ValueError: empty or equal frame names, or a matrix that is not 4x4 finite.
        """
        if not parent or not child or parent == child:
            raise ValueError(f"transform needs two different non-empty frames, got {parent!r} -> {child!r}")
        T = np.asarray(T_parent_child, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"transform {parent} -> {child} must be a finite 4x4 matrix")
        edge = self._edges.get(child)
        if edge is None or edge.parent != parent or edge.static != static:
            edge = self._edges[child] = _Edge(parent, static)
        if static:
            edge.stamps, edge.matrices = [stamp_ns], [T]
            self.counters["samples"] += 1
            return True
        if edge.stamps and stamp_ns < edge.stamps[-1] - self.cache_ns:
            self.counters["too_old"] += 1
            return False
        i = bisect.bisect_left(edge.stamps, stamp_ns)
        if i < len(edge.stamps) and edge.stamps[i] == stamp_ns:
            edge.matrices[i] = T
        else:
            edge.stamps.insert(i, stamp_ns)
            edge.matrices.insert(i, T)
        horizon = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.cache_ns)
        if horizon:
            del edge.stamps[:horizon], edge.matrices[:horizon]
        self.counters["samples"] += 1
        return True

    def set_transform_qt(self, parent: str, child: str, stamp_ns: int, translation, quaternion_xyzw,
                         static: bool = False) -> bool:
        """`set_transform` from a geometry_msgs/Transform's translation and (x, y, z, w) rotation."""
        return self.set_transform(parent, child, stamp_ns,
                                  matrix_from_translation_quaternion(translation, quaternion_xyzw), static)

    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while path[-1] in self._edges:
            path.append(self._edges[path[-1]].parent)
            if len(path) > len(self._edges) + 1:
                raise ConnectivityError(f"tf tree has a loop through {frame}: {' -> '.join(path)}")
        return path

    def _check_known(self, frame: str) -> None:
        if frame not in self._edges and frame not in self.frames():
            known = ", ".join(sorted(self.frames())) or "none"
            raise FrameNotFoundError(f"frame {frame!r} does not exist in the tf buffer (known frames: {known})")

    def _latest_common_stamp(self, chain: list[str]) -> int:
        dynamic = [self._edges[c].stamps[-1] for c in chain if not self._edges[c].static]
        return min(dynamic) if dynamic else 0

    def lookup(self, target: str, source: str, stamp_ns: int = 0) -> np.ndarray:
        """T_target_source at `stamp_ns` (0 = latest time common to the chain, like tf2).

        This is what tf2's lookup_transform(target, source, time) returns: the pose of
        `source` in `target`, mapping points from `source` to `target`.

        Raises:
            FrameNotFoundError: a frame no transform mentions.
            ConnectivityError: the frames are in different trees.
            ExtrapolationError: the stamp lies outside an edge's history.
        """
        if target == source:
            return np.eye(4)
        self._check_known(target)
        self._check_known(source)
        up_source = self._path_to_root(source)
        up_target = self._path_to_root(target)
        if up_source[-1] != up_target[-1]:
            raise ConnectivityError(
                f"could not find a connection between {target!r} and {source!r}: they are in "
                f"different trees (roots {up_target[-1]!r} and {up_source[-1]!r})"
            )
        common = next(f for f in up_source if f in set(up_target))
        source_chain = up_source[: up_source.index(common)]
        target_chain = up_target[: up_target.index(common)]
        if stamp_ns == 0:
            stamp_ns = self._latest_common_stamp(source_chain + target_chain)
        try:
            T_common_source = compose(*[self._edges[c].at(stamp_ns, c) for c in reversed(source_chain)])
            T_common_target = compose(*[self._edges[c].at(stamp_ns, c) for c in reversed(target_chain)])
        except ExtrapolationError as err:
            raise ExtrapolationError(f"lookup {target} <- {source} at {_format_stamp(stamp_ns)}: {err}") from None
        return invert(T_common_target) @ T_common_source

    def can_transform(self, target: str, source: str, stamp_ns: int = 0) -> bool:
        """Whether `lookup` would succeed."""
        try:
            self.lookup(target, source, stamp_ns)
        except TransformError:
            return False
        return True
