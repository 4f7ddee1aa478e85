"""RGB-D sequence folders on disk (7-Scenes, TUM RGB-D) as a list of timed samples.

Both datasets give the pose of the colour camera's OPTICAL frame (x right, y down, z forward)
in a world frame; `importer` turns that into REP 103 tf frames.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mvinverse_ros.datasets.errors import DatasetError
from mvinverse_ros.geometry.transforms import matrix_from_translation_quaternion
from mvinverse_ros.types import NS_PER_SECOND, CameraModel

# Published calibrations of the TUM RGB-D cameras (fx, fy, cx, cy, d0..d4); "ros" is the
# ROS default the TUM page recommends when the camera is unknown.
TUM_INTRINSICS = {
    "fr1": (517.3, 516.5, 318.6, 255.3, (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    "fr2": (520.9, 521.0, 325.1, 249.7, (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    "fr3": (535.4, 539.2, 320.1, 247.6, (0.0, 0.0, 0.0, 0.0, 0.0)),
    "ros": (525.0, 525.0, 319.5, 239.5, (0.0, 0.0, 0.0, 0.0, 0.0)),
}
TUM_DEPTH_PER_METRE = 5000.0   # TUM depth PNGs store 1/5000 m
SEVEN_SCENES_DEPTH_PER_METRE = 1000.0
SEVEN_SCENES_WIDTH, SEVEN_SCENES_HEIGHT = 640, 480
# 7-Scenes frames carry no time; they are stamped from this fixed, non-zero instant (2023-11-14
# 22:13:20 UTC) so that imports are reproducible and no stamp is 0, which tf reads as "latest".
SEVEN_SCENES_START_NS = 1_700_000_000 * NS_PER_SECOND


@dataclass(frozen=True)
class RgbdSample:
    """One colour image with its registered depth and its pose.

    Attributes:
        stamp_ns: capture time.
        color_path: colour image file (JPEG or PNG).
        depth_path: 16-bit depth PNG, or None.
        depth_per_metre: depth PNG units per metre (1000 = mm, TUM: 5000).
    """

    stamp_ns: int
    color_path: Path
    depth_path: Path | None
    depth_per_metre: float


@dataclass(frozen=True)
class RgbdSequence:
    """A sequence ready to be written as a bag.

    Attributes:
        samples: colour/depth pairs in time order.
        camera: calibration of the colour camera.
        poses: (stamp_ns, 4x4 world <- optical) in time order; may be denser than `samples`.
    """

    samples: tuple[RgbdSample, ...]
    camera: CameraModel
    poses: tuple[tuple[int, np.ndarray], ...]


def detect_format(folder: Path) -> str:
    """'7scenes' or 'tum' from the files a folder holds.

    Raises:
        DatasetError: neither layout.
    """
    if (folder / "rgb.txt").is_file():
        return "tum"
    if any(folder.glob("frame-*.color.*")):
        return "7scenes"
    raise DatasetError(f"Could not recognise {folder}: expected frame-*.color.jpg (7-Scenes) or rgb.txt (TUM RGB-D)")


def _read_matrix(path: Path, shape: tuple[int, int]) -> np.ndarray:
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as err:
        raise DatasetError(f"Could not read {path}: {err}") from err
    if matrix.shape != shape or not np.all(np.isfinite(matrix)):
        raise DatasetError(f"Could not read {path}: expected a finite {shape[0]}x{shape[1]} matrix, "
                           f"got shape {matrix.shape}")
    return matrix


def camera_from_intrinsics(fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                           distortion=(0.0, 0.0, 0.0, 0.0, 0.0)) -> CameraModel:
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return CameraModel(width, height, K, "plumb_bob", np.asarray(distortion, dtype=np.float64))


def load_7scenes(folder: Path, fps: float, intrinsics: tuple[float, float, float, float] | None = None) -> RgbdSequence:
    """A 7-Scenes sequence folder; frames carry no time, so frame i is stamped START + i / fps.

    Raises:
        DatasetError: missing or malformed files.
    """
    if fps <= 0:
        raise DatasetError(f"--fps must be positive for {folder}, got {fps}")
    colors = sorted(folder.glob("frame-*.color.*"))
    if not colors:
        raise DatasetError(f"Could not find frame-*.color.* images in {folder}")
    if intrinsics is None:
        K = _read_matrix(folder / "camera-intrinsics.txt", (3, 3))
        intrinsics = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    camera = camera_from_intrinsics(*intrinsics, SEVEN_SCENES_WIDTH, SEVEN_SCENES_HEIGHT)
    samples, poses = [], []
    for index, color in enumerate(colors):
        stem = color.name.split(".")[0]
        stamp = SEVEN_SCENES_START_NS + round(index * NS_PER_SECOND / fps)
        depth = folder / f"{stem}.depth.png"
        samples.append(RgbdSample(stamp, color, depth if depth.is_file() else None, SEVEN_SCENES_DEPTH_PER_METRE))
        poses.append((stamp, _read_matrix(folder / f"{stem}.pose.txt", (4, 4))))
    return RgbdSequence(tuple(samples), camera, tuple(poses))


def _tum_list(path: Path) -> list[list[str]]:
    """Rows of a TUM list file without comments."""
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DatasetError(f"Could not read {path}: {err}") from err
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


def _seconds_to_ns(text: str) -> int:
    seconds, _, fraction = text.partition(".")
    return int(seconds) * NS_PER_SECOND + int((fraction + "000000000")[:9])


def tum_camera_name(folder: Path) -> str:
    """'fr1' / 'fr2' / 'fr3' from a TUM folder name (rgbd_dataset_freiburg2_xyz), else 'ros'."""
    match = re.search(r"freiburg(\d)", folder.name)
    key = f"fr{match.group(1)}" if match else "ros"
    return key if key in TUM_INTRINSICS else "ros"


def load_tum(folder: Path, intrinsics: tuple[float, float, float, float] | None = None,
             max_depth_offset_s: float = 0.02) -> RgbdSequence:
    """A TUM RGB-D folder (rgb.txt, depth.txt, groundtruth.txt) with its recorded timestamps.

    Each colour image takes the nearest depth image within `max_depth_offset_s` (TUM's
    associate.py rule); poses are the ground truth at its own (denser) rate.

    Raises:
        DatasetError: missing or malformed files.
    """
    rgb = [(_seconds_to_ns(r[0]), folder / r[1]) for r in _tum_list(folder / "rgb.txt")]
    depth = [(_seconds_to_ns(r[0]), folder / r[1]) for r in _tum_list(folder / "depth.txt")] \
        if (folder / "depth.txt").is_file() else []
    if not rgb:
        raise DatasetError(f"{folder / 'rgb.txt'} lists no images")
    poses = []
    for row in _tum_list(folder / "groundtruth.txt"):
        if len(row) != 8:
            raise DatasetError(f"{folder / 'groundtruth.txt'}: expected 'timestamp tx ty tz qx qy qz qw', "
                               f"got {' '.join(row)!r}")
        values = [float(v) for v in row[1:]]
        poses.append((_seconds_to_ns(row[0]), matrix_from_translation_quaternion(values[:3], values[3:])))
    depth_stamps = np.array([s for s, _ in depth], dtype=np.int64)
    samples = []
    for stamp, color in sorted(rgb):
        depth_path = None
        if len(depth_stamps):
            nearest = int(np.argmin(np.abs(depth_stamps - stamp)))
            if abs(int(depth_stamps[nearest]) - stamp) <= max_depth_offset_s * NS_PER_SECOND:
                depth_path = depth[nearest][1]
        samples.append(RgbdSample(stamp, color, depth_path, TUM_DEPTH_PER_METRE))
    if intrinsics is None:
        fx, fy, cx, cy, distortion = TUM_INTRINSICS[tum_camera_name(folder)]
    else:
        (fx, fy, cx, cy), distortion = intrinsics, (0.0,) * 5
    camera = camera_from_intrinsics(fx, fy, cx, cy, 640, 480, distortion)
    return RgbdSequence(tuple(samples), camera, tuple(sorted(poses, key=lambda p: p[0])))


def load_rgbd_frames(folder: str | Path, size: tuple[int, int], limit: int | None = None, first: int = 0):
    """Images (uint8), depths (m), cameras and poses of a 7-Scenes folder resized to size=(w, h).

    Frames from index `first` on, at most `limit` of them.
    """
    sequence = load_7scenes(Path(folder), fps=10.0)
    stop = None if limit is None else first + limit
    samples = sequence.samples[first:stop]
    w, h = size
    camera = sequence.camera.resized(w, h)
    images, depths = [], []
    for sample in samples:
        bgr = cv2.imread(str(sample.color_path), cv2.IMREAD_COLOR)
        raw = cv2.imread(str(sample.depth_path), cv2.IMREAD_UNCHANGED)
        if bgr is None or raw is None:
            raise FileNotFoundError(f"cannot read {sample.color_path} or its depth")
        images.append(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)[..., ::-1].copy())
        metres = raw.astype(np.float32) / sample.depth_per_metre
        depths.append(cv2.resize(metres, (w, h), interpolation=cv2.INTER_NEAREST))
    poses = [pose for _, pose in sequence.poses[first:first + len(samples)]]
    return images, depths, [camera] * len(samples), poses
