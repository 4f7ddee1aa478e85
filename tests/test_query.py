"""query_materials on a hand-built map, and its answer as a QueryMaterials response through CDR."""
from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from mvinverse_ros.bag.typestore import RosbagsMessageFactory
from mvinverse_ros.conversions.query import query_response_fields, request_points
from mvinverse_ros.geometry.fusion import VoxelMap, specular_cue
from mvinverse_ros.geometry.query import query_materials
from mvinverse_ros.geometry.transforms import matrix_from_translation_quaternion
from mvinverse_ros.resources import share_file
from mvinverse_ros.types import SurfacePoints

# Voxel A around (0.05, 0.05, 0.05): two frames; voxel B around (1.05, 0.05, 0.05): one frame.
A_ROUGH, A_METAL = np.array([0.2, 0.4, 0.9], np.float32), np.array([0.0, 1.0, 1.0], np.float32)
A_ALBEDO = np.array([[0.1, 0.2, 0.3], [0.5, 0.2, 0.1], [0.9, 0.2, 0.5]], np.float32)
B_ROUGH, B_METAL, B_ALBEDO = 0.7, 0.25, (0.4, 0.5, 0.6)


def points(xyz, albedo, normal, roughness, metallic) -> SurfacePoints:
    xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
    n = len(xyz)
    return SurfacePoints(xyz, np.broadcast_to(np.asarray(albedo, np.float32), (n, 3)).copy(),
                         np.broadcast_to(np.asarray(normal, np.float32), (n, 3)).copy(),
                         np.broadcast_to(np.asarray(roughness, np.float32), (n,)).copy(),
                         np.broadcast_to(np.asarray(metallic, np.float32), (n,)).copy(),
                         np.full((n, 3), 0.5, np.float32))


@pytest.fixture(scope="module")
def cloud():
    voxels = VoxelMap(0.1, 10.0, 100)
    voxels.integrate(points([[0.04, 0.05, 0.05], [0.06, 0.05, 0.05]], A_ALBEDO[:2], (0, 0, 1), A_ROUGH[:2],
                            A_METAL[:2]))
    voxels.integrate(points([[0.05, 0.04, 0.06]], A_ALBEDO[2:], (0, 0, 1), A_ROUGH[2:], A_METAL[2:]))
    voxels.integrate(points([[1.05, 0.05, 0.05]], B_ALBEDO, (1, 0, 0), B_ROUGH, B_METAL))
    return voxels.cloud()


def test_query_returns_the_exact_means_and_spreads_of_the_nearest_voxel(cloud):
    answer = query_materials(cloud, [[0.05, 0.14 / 3, 0.16 / 3 + 0.05], [1.0, 0.0, 0.0]], radius=0.2)  # A mean + 5 cm
    assert answer.found.tolist() == [True, True]
    np.testing.assert_allclose(answer.distance[0], 0.05, rtol=1e-6)
    np.testing.assert_allclose(answer.albedo[0], A_ALBEDO.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(answer.albedo_std[0], A_ALBEDO.astype(np.float64).std(axis=0), rtol=1e-6)
    np.testing.assert_allclose(answer.roughness[0], A_ROUGH.astype(np.float64).mean(), rtol=1e-6)
    np.testing.assert_allclose(answer.roughness_std[0], A_ROUGH.astype(np.float64).std(), rtol=1e-6)
    np.testing.assert_allclose(answer.metallic[0], 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(answer.metallic_std[0], np.std([0.0, 1.0, 1.0]), rtol=1e-6)
    np.testing.assert_allclose(answer.specular[0], specular_cue(answer.roughness[0], answer.metallic[0]))
    assert answer.view_count.tolist() == [2, 1]
    np.testing.assert_allclose(answer.roughness[1], B_ROUGH, rtol=1e-6)
    np.testing.assert_array_equal(answer.roughness_std[1], 0.0)  # one point: no spread
    np.testing.assert_allclose(answer.albedo[1], B_ALBEDO, rtol=1e-6)


def test_points_beyond_the_radius_are_not_found(cloud):
    answer = query_materials(cloud, [[0.05, 0.05, 0.25], [0.05, 0.05, 0.35], [5.0, 5.0, 5.0]], radius=0.2)
    assert answer.found.tolist() == [True, False, False]
    assert np.all(np.isinf(answer.distance[1:]))
    for name in ("albedo", "albedo_std", "roughness", "metallic_std", "specular", "normal"):
        assert np.all(np.isnan(getattr(answer, name)[1:])), name
    assert answer.view_count.tolist() == [2, 0, 0]
    assert query_materials(cloud, [[0.05, 0.05, 0.25]], radius=0.0).found.tolist() == [False]
    empty = query_materials(cloud, np.empty((0, 3)), radius=1.0)
    assert len(empty) == 0 and empty.normal.shape == (0, 3)


def test_query_points_and_normals_are_in_the_request_frame(cloud):
    """A gripper frame 1 m along x of the fixed frame, turned 90 degrees about z."""
    s = np.sqrt(0.5)
    gripper_to_fixed = matrix_from_translation_quaternion([1.0, 0.0, 0.0], [0.0, 0.0, s, s])
    # In the gripper frame (x, y, z) is fixed (1 + y, -x, z): voxel B's mean (1.05, 0.05, 0.05) is at
    # (0.05, -0.05, 0.05), voxel A's mean (0.05, 0.14 / 3, 0.16 / 3) at (0.14 / 3, 0.95, 0.16 / 3).
    answer = query_materials(cloud, [[0.05, -0.05, 0.05], [0.14 / 3, 0.95, 0.16 / 3]], 0.01, gripper_to_fixed)
    assert answer.found.tolist() == [True, True]
    np.testing.assert_allclose(answer.distance, 0.0, atol=1e-6)
    np.testing.assert_allclose(answer.roughness, [B_ROUGH, A_ROUGH.mean()], rtol=1e-6)
    np.testing.assert_allclose(answer.normal[0], [0.0, -1.0, 0.0], atol=1e-6)  # fixed +x is gripper -y
    np.testing.assert_allclose(answer.normal[1], [0.0, 0.0, 1.0], atol=1e-6)


def test_bad_queries_are_refused(cloud):
    with pytest.raises(ValueError, match="radius must be >= 0"):
        query_materials(cloud, [[0, 0, 0]], -1.0)
    with pytest.raises(ValueError, match=r"must be \(M, 3\)"):
        query_materials(cloud, [0, 0, 0], 1.0)


def service_store():
    """A rosbags typestore with the two halves of srv/QueryMaterials.srv, registered as messages."""
    request, response = share_file("srv/QueryMaterials.srv").read_text().split("\n---\n")
    store = get_typestore(Stores.ROS2_HUMBLE)
    store.register(get_types_from_msg(request, "mvinverse_ros/msg/QueryMaterials_Request"))
    store.register(get_types_from_msg(response, "mvinverse_ros/msg/QueryMaterials_Response"))
    return store


def test_answer_fills_a_response_that_survives_cdr(cloud):
    store = service_store()
    factory = RosbagsMessageFactory(store)
    Point, Header, Time = (store.types[f"{p}/msg/{n}"] for p, n in
                           (("geometry_msgs", "Point"), ("std_msgs", "Header"), ("builtin_interfaces", "Time")))
    request_type = "mvinverse_ros/msg/QueryMaterials_Request"
    request = store.types[request_type](header=Header(stamp=Time(sec=1, nanosec=2), frame_id="odom"), radius=0.2,
                                        points=[Point(x=0.05, y=0.05, z=0.1), Point(x=3.0, y=0.0, z=0.0)])
    request = store.deserialize_cdr(store.serialize_cdr(request, request_type), request_type)
    answer = query_materials(cloud, request_points(request), request.radius)
    response_type = "mvinverse_ros/msg/QueryMaterials_Response"
    response = store.types[response_type](**query_response_fields(factory, answer))
    back = store.deserialize_cdr(store.serialize_cdr(response, response_type), response_type)
    assert back.success and list(back.found) == [True, False]
    np.testing.assert_array_equal(back.distance, answer.distance)
    np.testing.assert_array_equal(back.roughness_std, answer.roughness_std)
    np.testing.assert_array_equal(back.view_count, [2, 0])
    assert (back.albedo[0].r, back.albedo[0].a) == (answer.albedo[0, 0], 1.0)
    assert back.albedo_std[0].b == answer.albedo_std[0, 2]
    assert (back.normal[0].x, back.normal[0].y, back.normal[0].z) == tuple(answer.normal[0].astype(np.float64))
    assert np.isnan(back.normal[1].x) and np.isnan(back.specular[1])
