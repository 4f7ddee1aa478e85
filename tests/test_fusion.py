"""VoxelMap bookkeeping: averages, spreads, view counts, extent, bad values, the eviction order, save and load."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mvinverse_ros.conversions import ConversionError
from mvinverse_ros.conversions.ply import read_map_ply, read_ply, write_ply
from mvinverse_ros.geometry.fusion import VoxelMap, VoxelMapState, specular_cue
from mvinverse_ros.types import SurfacePoints


def observed(points, albedo=0.5, normal=(0.0, 0.0, 1.0), roughness=0.5, metallic=0.0, shading=0.5) -> SurfacePoints:
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    n = len(points)

    def column(value, width):
        return np.broadcast_to(np.asarray(value, dtype=np.float32), (n, width) if width else (n,)).copy()

    return SurfacePoints(points, column(albedo, 3), column(normal, 3), column(roughness, 0), column(metallic, 0),
                         column(shading, 3))


def test_points_in_one_voxel_are_averaged_and_normals_renormalised():
    voxels = VoxelMap(voxel_size=0.1, extent=10.0, max_points=100)
    assert voxels.integrate(observed([[0.01, 0.01, 0.01], [0.03, 0.05, 0.09]], albedo=[1, 0, 0],
                                     normal=(1.0, 0.0, 0.0), roughness=0.2)) == 1
    voxels.integrate(observed([[0.05, 0.06, 0.02]], albedo=[0, 0, 1], normal=(0.0, 1.0, 0.0), roughness=0.8))
    cloud = voxels.cloud()
    assert len(cloud) == 1
    np.testing.assert_allclose(cloud.points[0], [0.03, 0.04, 0.04], atol=1e-6)
    np.testing.assert_allclose(cloud.albedo[0], [2 / 3, 0, 1 / 3], atol=1e-6)
    np.testing.assert_allclose(cloud.roughness[0], 0.4, atol=1e-6)
    np.testing.assert_allclose(cloud.normal[0], np.array([2, 1, 0]) / np.sqrt(5), atol=1e-6)
    assert cloud.view_count[0] == 2  # two integrate calls, three points


def test_view_count_counts_frames_not_points():
    voxels = VoxelMap(0.1, 10.0, 100)
    voxels.integrate(observed([[0.01, 0, 0]] * 5 + [[1.01, 0, 0]]))
    voxels.integrate(observed([[0.02, 0, 0]]))
    voxels.integrate(observed([[0.03, 0, 0], [2.01, 0, 0]]))
    cloud = voxels.cloud()
    by_x = dict(zip(np.floor(cloud.points[:, 0]).astype(int), cloud.view_count))
    assert by_x == {0: 3, 1: 1, 2: 1}
    assert cloud.view_count.dtype == np.uint32


def test_negative_coordinates_get_their_own_voxels():
    voxels = VoxelMap(0.1, 10.0, 100)
    voxels.integrate(observed([[-0.01, 0, 0], [0.01, 0, 0], [-0.01, -0.01, -0.01], [-4.99, 4.99, -4.9]]))
    assert len(voxels) == 4


def test_points_beyond_extent_and_non_finite_are_dropped_and_counted():
    voxels = VoxelMap(0.1, 2.0, 100)
    frame = observed([[0, 0, 1.9], [0, 0, 2.1], [1.5, 1.5, 0], [0, 1, 0], [0, 0.5, 0]])
    frame.roughness[3] = np.nan
    frame.normal[4] = np.nan
    assert voxels.integrate(frame) == 1
    assert voxels.counters["points_beyond_extent"] == 2
    assert voxels.counters["points_not_finite"] == 2
    assert voxels.counters["points"] == 1
    assert voxels.integrate(observed(np.empty((0, 3)))) == 0


def test_oldest_voxels_leave_first_when_over_budget():
    voxels = VoxelMap(1.0, 100.0, max_points=4)
    voxels.integrate(observed([[0.5, 0, 0], [1.5, 0, 0]]))  # tick 1: A, B
    voxels.integrate(observed([[2.5, 0, 0], [3.5, 0, 0]]))  # tick 2: C, D
    voxels.integrate(observed([[0.5, 0, 0]]))  # tick 3: A seen again
    voxels.integrate(observed([[4.5, 0, 0]]))  # tick 4: E -> budget 4 exceeded, B (tick 1) leaves
    kept = sorted(np.floor(voxels.cloud().points[:, 0]).astype(int))
    assert kept == [0, 2, 3, 4]
    np.testing.assert_array_equal(voxels.last_seen()[np.argsort(voxels.cloud().points[:, 0])], [3, 2, 2, 4])
    voxels.integrate(observed([[5.5, 0, 0], [6.5, 0, 0]]))  # C and D (tick 2) leave
    assert sorted(np.floor(voxels.cloud().points[:, 0]).astype(int)) == [0, 4, 5, 6]
    assert voxels.counters["voxels_evicted"] == 3


def test_one_frame_larger_than_budget_keeps_budget():
    voxels = VoxelMap(0.1, 100.0, max_points=10)
    voxels.integrate(observed(np.stack([np.arange(50) * 0.1 + 0.05, np.zeros(50), np.zeros(50)], axis=1)))
    assert len(voxels) == 10


def test_many_points_match_a_plain_reference():
    """Vectorised merging equals a direct per-voxel mean over all frames."""
    rng = np.random.default_rng(0)
    voxels = VoxelMap(0.25, 10.0, 10_000)
    frames = [observed(rng.uniform(-1, 1, size=(2000, 3)), roughness=0.0) for _ in range(3)]
    for frame in frames:
        frame.roughness[:] = rng.uniform(size=len(frame))
        voxels.integrate(frame)
    points = np.concatenate([f.points for f in frames])
    rough = np.concatenate([f.roughness for f in frames])
    keys, inverse = np.unique(np.floor(points / 0.25).astype(int), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    expected = np.bincount(inverse, rough) / np.bincount(inverse)
    cloud = voxels.cloud()
    order = np.lexsort(np.floor(cloud.points / 0.25).astype(int).T[::-1])
    assert len(cloud) == len(keys)
    np.testing.assert_allclose(cloud.roughness[order], expected, atol=1e-5)


def test_constructor_rejects_unusable_sizes():
    with pytest.raises(ValueError, match="voxel_size > 0"):
        VoxelMap(0.0, 1.0, 10)
    with pytest.raises(ValueError, match="voxels"):
        VoxelMap(1e-6, 100.0, 10)


def random_frames(rng, count=4, points=3000, size=0.8):
    """Frames of random materials over a few voxels; albedo and metallic spread little around a large mean."""
    frames = []
    for _ in range(count):
        frame = observed(rng.uniform(-size, size, size=(points, 3)))
        frame.albedo[:] = 0.9 + rng.normal(scale=1e-3, size=(points, 3))
        frame.roughness[:] = rng.uniform(size=points)
        frame.metallic[:] = 0.95 + rng.normal(scale=1e-4, size=points)
        frames.append(frame)
    return frames


def test_spreads_match_numpy_over_every_integrated_sample():
    rng = np.random.default_rng(1)
    voxels = VoxelMap(0.25, 10.0, 10_000)
    frames = random_frames(rng)
    for frame in frames:
        voxels.integrate(frame)
    points = np.concatenate([f.points for f in frames])
    keys, inverse = np.unique(np.floor(points / 0.25).astype(int), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    cloud = voxels.cloud()
    order = np.lexsort(np.floor(cloud.points / 0.25).astype(int).T[::-1])
    assert len(cloud) == len(keys) > 10
    samples = {"albedo_std": np.concatenate([f.albedo for f in frames]),
               "roughness_std": np.concatenate([f.roughness for f in frames]),
               "metallic_std": np.concatenate([f.metallic for f in frames])}
    for name, values in samples.items():
        expected = np.stack([np.std(values[inverse == v].astype(np.float64), axis=0) for v in range(len(keys))])
        np.testing.assert_allclose(getattr(cloud, name)[order], expected, rtol=1e-5, err_msg=name)
    many = np.bincount(inverse)[np.argsort(order)] > 500  # cloud order: voxels full of points
    np.testing.assert_allclose(cloud.metallic_std[many], 1e-4, rtol=0.2)  # a 1e-4 spread around 0.95 is kept


def test_one_point_has_no_spread_and_specular_follows_the_means():
    voxels = VoxelMap(0.1, 10.0, 100)
    voxels.integrate(observed([[0.01, 0, 0]], roughness=0.5, metallic=0.0))
    voxels.integrate(observed([[1.01, 0, 0], [1.02, 0, 0]], roughness=[0.1, 0.3], metallic=[1.0, 0.0]))
    cloud = voxels.cloud()
    np.testing.assert_array_equal(cloud.roughness_std[0], 0.0)
    np.testing.assert_allclose(cloud.roughness_std[1], 0.1, rtol=1e-6)
    np.testing.assert_allclose(cloud.specular, specular_cue(np.array([0.5, 0.2]), np.array([0.0, 0.5])))


def test_specular_cue_is_high_for_metal_and_gloss_and_low_for_rough_dielectrics():
    rough = np.array([[1.0, 0.5, 0.0], [1.0, 0.5, 0.0]])
    metal = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(specular_cue(rough, metal), [[0.0, 0.25, 1.0], [1.0, 1.0, 1.0]])
    assert specular_cue(rough, metal).shape == (2, 3)  # per pixel as well as per voxel


def assert_same_state(a: VoxelMapState, b: VoxelMapState):
    assert (a.voxel_size, a.tick) == (b.voxel_size, b.tick)
    for name in ("indices", "sums", "m2", "views", "last_seen"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name


def test_save_and_load_round_trip_bit_for_bit(tmp_path):
    """A map written to PLY and loaded carries on exactly as the original: same state, same next cloud."""
    rng = np.random.default_rng(2)
    frames = random_frames(rng, count=5, size=3.0)
    frames[0].points[:5] *= -1  # negative voxel indices
    original = VoxelMap(0.1, 10.0, 20_000)
    for frame in frames[:4]:
        original.integrate(frame)
    original.integrate(observed(np.empty((0, 3))))  # a tick with no voxel touched
    write_ply(tmp_path / "map.ply", original)
    resumed = VoxelMap(0.1, 10.0, 20_000)
    resumed.restore(read_map_ply(tmp_path / "map.ply"))
    assert_same_state(resumed.state(), original.state())
    original.integrate(frames[4])
    resumed.integrate(frames[4])
    assert_same_state(resumed.state(), original.state())
    for field in dataclasses.fields(original.cloud()):
        x, y = getattr(original.cloud(), field.name), getattr(resumed.cloud(), field.name)
        assert x.tobytes() == y.tobytes(), field.name
    vertices = read_ply(tmp_path / "map.ply")  # the viewer's columns are the cloud's
    assert {"x", "nx", "red", "roughness_std", "albedo_std_r", "specular"} <= set(vertices.dtype.names)


def test_load_refuses_another_voxel_size_and_foreign_files(tmp_path):
    voxels = VoxelMap(0.1, 10.0, 100)
    voxels.integrate(observed([[0.01, 0, 0]]))
    write_ply(tmp_path / "map.ply", voxels)
    with pytest.raises(ValueError, match="voxels of 0.1 m, this map 0.2 m"):
        VoxelMap(0.2, 10.0, 100).restore(read_map_ply(tmp_path / "map.ply"))
    (tmp_path / "other.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1\n"
                                         b"property float x\nend_header\n\0\0\0\0")
    with pytest.raises(ConversionError, match="does not keep a voxel map's state: it lacks voxel_i"):
        read_map_ply(tmp_path / "other.ply")
    with pytest.raises(ConversionError, match="Could not read PLY"):
        read_map_ply(tmp_path / "missing.ply")


def test_a_loaded_map_over_budget_keeps_the_newest_voxels(tmp_path):
    voxels = VoxelMap(1.0, 100.0, 10)
    for x in range(6):
        voxels.integrate(observed([[x + 0.5, 0, 0]]))
    write_ply(tmp_path / "map.ply", voxels)
    smaller = VoxelMap(1.0, 100.0, 4)
    smaller.restore(read_map_ply(tmp_path / "map.ply"))
    assert sorted(np.floor(smaller.cloud().points[:, 0]).astype(int)) == [2, 3, 4, 5]
