"""The Mitsuba generator: its ground truth agrees with its own renders and with its cameras."""
from itertools import permutations

import numpy as np
import pytest

pytest.importorskip("mitsuba")
pytestmark = pytest.mark.usefixtures("mitsuba_jit")

from mvinverse_ros.geometry.correspondence import reprojection  # noqa: E402
from mvinverse_ros.datasets.synthetic import (SCENE_STYLES, RenderSettings, generate, load_scene,  # noqa: E402
                                              random_scene, render_scene)
from mvinverse_ros.types import CameraModel  # noqa: E402

SIZE = (56, 42)


@pytest.fixture(scope="module")
def diffuse_scene():
    """A Lambertian scene: its linear image is exactly albedo * shading (up to noise and edges)."""
    settings = RenderSettings(*SIZE, spp=64, aov_spp=4, diffuse_only=True)
    return render_scene(seed=7, index=3, n_views=3, settings=settings)


def interior(valid: np.ndarray) -> np.ndarray:
    """Valid pixels whose 3x3 neighbourhood is valid (edge pixels mix surfaces)."""
    v = np.pad(valid, ((0, 0), (1, 1), (1, 1)))
    out = np.ones_like(valid)
    for dy in range(3):
        for dx in range(3):
            out &= v[:, dy:dy + valid.shape[1], dx:dx + valid.shape[2]]
    return out


def test_albedo_times_shading_reconstructs_the_diffuse_render(diffuse_scene):
    s = diffuse_scene
    inner = interior(s["valid"])
    inner &= (s["shading"] < 0.999).all(-1)  # shading is clipped to [0, 1]
    assert inner.sum() > 1000
    linear = s["linear_rgb"].astype(np.float64)[inner]
    rebuilt = (s["albedo"].astype(np.float64) / 255 * s["shading"].astype(np.float64))[inner]
    assert rebuilt.mean(0) == pytest.approx(linear.mean(0), rel=0.03)
    for v in range(len(s["rgb"])):  # each view on its own (medians of per-pixel ratios are biased by noise)
        lin_v = s["linear_rgb"][v].astype(np.float64)[inner[v]]
        reb_v = (s["albedo"][v].astype(np.float64) / 255 * s["shading"][v].astype(np.float64))[inner[v]]
        assert reb_v.sum() / lin_v.sum() == pytest.approx(1.0, abs=0.04)


def test_views_agree_through_depth_poses_and_intrinsics(diffuse_scene):
    """Back-projecting one view's pixels with depth + pose lands on the same surface in the others.

    Same albedo, same world-frame normal.
    """
    s = diffuse_scene
    n, h, w = s["depth"].shape
    cameras = [CameraModel(w, h, K.astype(np.float64)) for K in s["K"]]
    poses = s["cam_to_world"].astype(np.float64)
    albedo = s["albedo"].astype(np.float64) / 255
    world_normals = np.einsum("nij,nhwj->nhwi", poses[:, :3, :3], s["normal"].astype(np.float64))
    inner = interior(s["valid"])
    matched = 0
    for i, j in permutations(range(n), 2):
        corr = reprojection(s["depth"][i], cameras[i], poses[i], s["depth"][j], cameras[j], poses[j])
        r, c = corr.nearest()
        keep = inner[i, corr.rows, corr.cols] & inner[j, r, c]
        a_i, a_j = albedo[i, corr.rows[keep], corr.cols[keep]], albedo[j, r[keep], c[keep]]
        n_i, n_j = world_normals[i, corr.rows[keep], corr.cols[keep]], world_normals[j, r[keep], c[keep]]
        matched += keep.sum()
        assert np.median(np.abs(a_i - a_j)) < 0.02
        assert np.median((n_i * n_j).sum(-1)) > 0.99
    assert matched > 500


def test_ground_truth_conventions(diffuse_scene):
    s = diffuse_scene
    valid = s["valid"]
    normals = s["normal"].astype(np.float64)[valid]
    assert np.allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=2e-3)
    assert (normals[:, 2] <= 1e-3).mean() > 0.99          # REP 103 optical frame: visible surfaces face -z
    assert (s["depth"][valid] > 0).all() and (s["depth"][~valid] == 0).all()
    assert np.allclose(s["cam_to_world"][:, 3], [0, 0, 0, 1])
    rotations = s["cam_to_world"][:, :3, :3].astype(np.float64)
    assert np.allclose(rotations @ rotations.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert s["rgb"].dtype == np.uint8 and s["shading"].max() <= 1.0


def test_scene_description_is_deterministic():
    settings = RenderSettings(*SIZE)
    a = random_scene(np.random.default_rng([3, 5]), 4, settings)
    b = random_scene(np.random.default_rng([3, 5]), 4, settings)
    assert np.array_equal(a["poses"], b["poses"]) and len(a["shapes"]) == len(b["shapes"])
    assert np.linalg.norm(np.diff(a["poses"][:, :3, 3], axis=0), axis=1).min() > 0.05  # real parallax


def test_generate_writes_compact_resumable_scenes(tmp_path):
    settings = RenderSettings(*SIZE, spp=4, aov_spp=1)
    (path,) = generate(tmp_path, 1, 2, 2, seed=0, settings=settings)
    stamp = path.stat().st_mtime_ns
    assert generate(tmp_path, 1, 2, 2, seed=0, settings=settings) == [path] and path.stat().st_mtime_ns == stamp
    with np.load(path) as raw:
        assert raw["rgb"].dtype == np.uint8 and raw["normal"].dtype == np.float16 and "linear_rgb" not in raw
    scene = load_scene(path)
    assert scene["rgb"].shape == (2, SIZE[1], SIZE[0], 3) and scene["rgb"].max() <= 1.0
    assert scene["K"].shape == (2, 3, 3) and scene["cam_to_world"].shape == (2, 4, 4)


def _material_values(description: dict, field: str) -> np.ndarray:
    values = [np.ravel(getattr(shape["material"], field)) for shape in description["shapes"]]
    return np.unique(np.round(np.concatenate(values) * 255))


def test_heldout_rooms_use_lights_that_training_never_shows():
    settings = RenderSettings(*SIZE)
    lights = {style: {light["kind"] for i in range(30) for light in
                      random_scene(np.random.default_rng([0, i]), 2, settings, SCENE_STYLES[style])["lights"]}
              for style in ("train", "heldout")}
    assert lights["train"] == {"point", "area", "constant"}
    assert lights["heldout"] == {"spot", "directional", "constant"}


def test_roughness_and_metallic_ground_truth_follow_textured_materials():
    """With one sample per pixel every map value is one of the scene's material values.

    Mixed materials make roughness vary inside objects.
    """
    settings = RenderSettings(*SIZE, spp=4, aov_spp=1)
    index = next(i for i in range(50) if any(np.ndim(s["material"].roughness) for s in
                                             random_scene(np.random.default_rng([2, i]), 2, settings,
                                                          SCENE_STYLES["heldout"])["shapes"]))
    description = random_scene(np.random.default_rng([2, index]), 2, settings, SCENE_STYLES["heldout"])
    scene = render_scene(2, index, 2, settings, SCENE_STYLES["heldout"])
    for field in ("roughness", "metallic"):
        seen = np.unique(scene[field][scene["valid"]])
        assert np.isin(seen, _material_values(description, field)).all(), field
    assert len(np.unique(scene["roughness"][scene["valid"]])) >= 3
