"""Seconds per relit 640x480 frame on this CPU: one point light, with and without an albedo edit, and a cloud view.

Maps come from the bundled model on three shared 7-Scenes frames (network time is not counted).
Run: python benchmarks/relight.py [--repeats N]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mvinverse_ros.datasets.rgbd import load_rgbd_frames
from mvinverse_ros.geometry.fusion import VoxelMap, surface_points
from mvinverse_ros.inference import predict
from mvinverse_ros.params import load_params
from mvinverse_ros.pipeline import engine_from_params
from mvinverse_ros.rendering.edit import AlbedoEdit, Sphere, edit_frame
from mvinverse_ros.rendering.lights import PointLight
from mvinverse_ros.rendering.relight import relight_frame, render_cloud
from mvinverse_ros.types import Frame

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "7scenes-redkitchen"


def best_of(repeats: int, work) -> float:
    """Fastest wall time of `repeats` calls (the least disturbed by other jobs on the machine)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=SHARED)
    args = parser.parse_args()
    params = load_params()
    images, depths, cameras, poses = load_rgbd_frames(args.data, (640, 480), limit=17)
    picks = (0, 8, 16)
    _, loaded = engine_from_params(params.model)
    maps = predict([images[i] for i in picks], loaded)
    frames = [Frame(i, "camera", images[i], cameras[i], depths[i], poses[i]) for i in picks]
    voxels = VoxelMap(params.fusion.voxel_size, params.fusion.extent, params.fusion.max_points)
    for frame, frame_maps in zip(frames, maps):
        voxels.integrate(surface_points(frame, frame_maps, params.fusion.pixel_stride, params.fusion.max_depth))
    cloud = voxels.cloud()
    lights = [PointLight(np.array([-0.44, 0.08, 0.90]), np.ones(3), 2.0)]
    edits = [AlbedoEdit(Sphere(np.array([-0.535, 0.145, 1.495]), 0.15), colour=np.array([0.1, 0.3, 0.9]))]
    frame, frame_maps = frames[0], maps[0]
    timings = {
        "relight (1 point light)": lambda: relight_frame(frame, frame_maps, lights, 0.7),
        "edit albedo (1 sphere)": lambda: edit_frame(frame, frame_maps, edits),
        "relight + edit (what `relight` does per frame, 2 renders)": lambda: (
            relight_frame(frame, frame_maps, lights, 0.7),
            relight_frame(frame, frame_maps, lights, 0.7, edit_frame(frame, frame_maps, edits))),
        f"cloud view ({len(cloud)} points, z-buffer splat + relight)": lambda: render_cloud(
            cloud, frame.camera, frame.camera_to_fixed, params.fusion.voxel_size, lights, 0.7),
    }
    print(f"640x480, best of {args.repeats}:")
    for name, work in timings.items():
        print(f"  {name}: {best_of(args.repeats, work) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
