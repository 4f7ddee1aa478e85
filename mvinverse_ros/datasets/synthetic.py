"""Synthetic multi-view scenes with exact material ground truth, rendered with Mitsuba 3.

Each scene is a random indoor-like room (floor, walls, sometimes a ceiling) with boxes, spheres,
cylinders and discs made of `principled` materials (random base colour or procedural texture,
roughness, metallic), lit by point lights, area lights and, when the room is open, a constant
environment. 2..8 pinhole cameras circle a common target so the views have real parallax.

Ground truth per view, all in the project's conventions:
- rgb: tone-mapped sRGB (one exposure per scene, so views agree);
- albedo: the base colour (linear), roughness, metallic;
- normal: shading normal in the REP 103 optical frame (x right, y down, z forward), facing the camera;
- shading: diffuse shading E/pi (linear, same exposure as rgb, clipped to [0, 1]), so that
  albedo * shading is the diffuse part of the linear image;
- depth: z in metres; K: 3x3 intrinsics (pixel-centre convention); cam_to_world: 4x4 pose of the
  optical frame; valid: pixels fully covered by non-emitting geometry.

Everything is deterministic from (seed, scene index). One compressed .npz per scene.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvinverse_ros.visualize import linear_to_srgb, srgb_to_linear

# JIT variant: the Python ground-truth integrator needs one, and its path tracer measured ~2x faster
# than scalar_rgb here (4 views, 112x84, 32 spp: 0.5-0.7 s vs 1.0-1.3 s).
MITSUBA_VARIANT = "llvm_ad_rgb"
MAX_DEPTH = 5
# Mitsuba's camera looks along +z with +x left and +y up; the optical frame has x right, y down.
OPTICAL_TO_MITSUBA_CAMERA = np.diag([-1.0, -1.0, 1.0, 1.0])


class SyntheticDataError(RuntimeError):
    """A scene could not be generated or read; the message names the path and the cause."""


@dataclass(frozen=True)
class RenderSettings:
    """How scenes are rendered.

    Attributes:
        width, height: image size in pixels.
        spp: samples per pixel of the radiance and shading passes.
        aov_spp: samples per pixel of the roughness/metallic pass (only needs antialiasing).
        diffuse_only: Lambertian materials everywhere (image = albedo * shading; checks the ground truth).
    """

    width: int = 112
    height: int = 84
    spp: int = 32
    aov_spp: int = 8
    diffuse_only: bool = False


# ---------------------------------------------------------------- random scene description


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A linear base colour drawn in a perceptual (HSV-like sRGB) space."""
    hue = rng.uniform(0, 1)
    sat = rng.uniform(0.0, 0.9)
    val = rng.uniform(0.15, 0.95)
    rgb = np.array([abs(((hue * 6 + k) % 6) - 3) - 1 for k in (0, 4, 2)]).clip(0, 1)
    return srgb_to_linear(val * (1 - sat + sat * rgb))


def _random_texture(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A procedural linear-RGB texture: checker, stripes, or smooth noise between two colours."""
    a, b = _random_colour(rng), _random_colour(rng)
    yy, xx = np.mgrid[0:size, 0:size] / size
    kind = rng.integers(3)
    if kind == 0:
        n = rng.integers(2, 9)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float32)
    elif kind == 1:
        n = rng.integers(2, 12)
        angle = rng.uniform(0, np.pi)
        t = (np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * n * 2 * np.pi) > 0).astype(np.float32)
    else:
        coarse = rng.uniform(0, 1, (5, 5))
        up = np.kron(coarse, np.ones((size // 4, size // 4)))[:size, :size]
        t = np.clip((up - up.min()) / (np.ptp(up) + 1e-6), 0, 1)
    return (a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]).astype(np.float32)


@dataclass(frozen=True)
class Material:
    base_colour: np.ndarray  # (3,) constant, or (S, S, 3) texture
    roughness: float
    metallic: float


def _random_material(rng: np.random.Generator, textured_p: float = 0.5, metal_p: float = 0.3) -> Material:
    base = _random_texture(rng) if rng.uniform() < textured_p else _random_colour(rng)
    metallic = float(rng.uniform(0.5, 1.0)) if rng.uniform() < metal_p else 0.0
    return Material(base, float(rng.uniform(0.05, 1.0)), metallic)


def _look_at(origin: np.ndarray, target: np.ndarray, world_up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """4x4 camera-to-world pose of an optical frame (z to target, y down) at `origin`."""
    z = target - origin
    z = z / np.linalg.norm(z)
    x = np.cross(z, np.asarray(world_up))
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, origin
    return pose


def intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K for a horizontal field of view, pixel centres at integer coordinates."""
    f = width / 2 / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[f, 0, width / 2 - 0.5], [0, f, height / 2 - 0.5], [0, 0, 1]])


def random_scene(rng: np.random.Generator, n_views: int, settings: RenderSettings) -> dict:
    """A plain-numpy description of one scene: shapes, lights, cameras (no Mitsuba objects)."""
    half_w, half_d = rng.uniform(2.0, 3.5, 2)
    height = rng.uniform(2.5, 3.2)
    closed = rng.uniform() < 0.5
    shapes = []

    def rect(centre, rotation, scale, material):
        shapes.append(dict(kind="rectangle", centre=centre, rotation=rotation, scale=scale, material=material))

    floor = _random_material(rng, textured_p=0.7, metal_p=0.05)
    wall = _random_material(rng, textured_p=0.3, metal_p=0.0)
    rect([0, 0, 0], (0, [1, 0, 0]), [half_w, half_d, 1], floor)
    walls = [([half_w, 0, height / 2], (90, [0, 1, 0]), [height / 2, half_d, 1]),
             ([-half_w, 0, height / 2], (90, [0, 1, 0]), [height / 2, half_d, 1]),
             ([0, half_d, height / 2], (90, [1, 0, 0]), [half_w, height / 2, 1]),
             ([0, -half_d, height / 2], (90, [1, 0, 0]), [half_w, height / 2, 1])]
    keep = range(4) if closed else rng.choice(4, size=rng.integers(1, 4), replace=False)
    for i in keep:
        rect(*walls[i], wall if rng.uniform() < 0.7 else _random_material(rng, 0.3, 0.0))
    if closed:
        rect([0, 0, height], (0, [1, 0, 0]), [half_w, half_d, 1], _random_material(rng, 0.1, 0.0))

    # Objects stand on the floor near the middle so every camera sees most of them.
    for _ in range(rng.integers(4, 11)):
        size = rng.uniform(0.15, 0.55)
        xy = rng.uniform(-1.3, 1.3, 2)
        material = _random_material(rng)
        kind = ["cube", "sphere", "cylinder", "disk"][rng.choice(4, p=[0.4, 0.35, 0.2, 0.05])]
        if kind == "cube":
            sz = size * rng.uniform(0.5, 1.0, 3)
            shapes.append(dict(kind="cube", centre=[*xy, sz[2]], rotation=(rng.uniform(0, 90), [0, 0, 1]),
                               scale=sz, material=material))
        elif kind == "sphere":
            shapes.append(dict(kind="sphere", centre=[*xy, size], rotation=(0, [0, 0, 1]), scale=[size] * 3,
                               material=material))
        elif kind == "cylinder":
            h = rng.uniform(0.3, 1.2)
            shapes.append(dict(kind="cylinder", centre=[*xy, 0], rotation=(0, [0, 0, 1]),
                               scale=[size * 0.6, size * 0.6, h],
                               material=material))
        else:
            shapes.append(dict(kind="disk", centre=[*xy, rng.uniform(0.3, 1.5)],
                               rotation=(rng.uniform(-40, 40), [1, 0, 0]),
                               scale=[size] * 3, material=material))

    lights = []
    for _ in range(rng.integers(1, 4)):
        pos = [rng.uniform(-half_w + 0.3, half_w - 0.3), rng.uniform(-half_d + 0.3, half_d - 0.3),
               rng.uniform(1.5, height - 0.2)]
        colour = 0.6 + 0.4 * rng.uniform(0, 1, 3)
        lights.append(dict(kind="point", position=pos, intensity=(rng.uniform(2, 15) * colour).tolist()))
    for _ in range(rng.integers(0, 3) if closed else rng.integers(0, 2)):
        size = rng.uniform(0.2, 0.6)
        pos = [rng.uniform(-half_w + 0.6, half_w - 0.6), rng.uniform(-half_d + 0.6, half_d - 0.6), height - 0.01]
        lights.append(dict(kind="area", centre=pos, scale=[size, size, 1],
                           radiance=(rng.uniform(3, 15) * np.ones(3)).tolist()))
    if not closed or rng.uniform() < 0.3:
        colour = 0.7 + 0.3 * rng.uniform(0, 1, 3)
        lights.append(dict(kind="constant", radiance=(rng.uniform(0.2, 1.5) * colour).tolist()))

    # Cameras on an arc around a target among the objects: real parallax between views.
    target = np.array([*rng.uniform(-0.6, 0.6, 2), rng.uniform(0.2, 0.7)])
    azimuth0 = rng.uniform(0, 2 * np.pi)
    spread = np.radians(rng.uniform(8, 22))
    distance = rng.uniform(1.8, 3.0)
    hfov = rng.uniform(55, 75)
    poses = []
    for v in range(n_views):
        az = azimuth0 + (v - (n_views - 1) / 2) * spread + rng.normal(0, spread * 0.2)
        d = distance * rng.uniform(0.85, 1.15)
        origin = target + np.array([d * np.cos(az), d * np.sin(az), 0.0])
        origin[0] = np.clip(origin[0], -half_w + 0.15, half_w - 0.15)
        origin[1] = np.clip(origin[1], -half_d + 0.15, half_d - 0.15)
        origin[2] = rng.uniform(1.0, 1.9)
        poses.append(_look_at(origin, target + rng.normal(0, 0.1, 3)))
    K = intrinsics(settings.width, settings.height, hfov)
    return dict(shapes=shapes, lights=lights, poses=np.stack(poses), K=K, hfov=hfov)


# ---------------------------------------------------------------- Mitsuba scenes


# Dr.Jit's LLVM backend needs a recent libLLVM: with Debian 12's default libLLVM 14 its JIT aborts
# the whole process ("Cannot select ... fminimum"); libLLVM 19 (Debian package libllvm19) works.
MIN_LLVM_MAJOR = 19
_LLVM_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib")


def newest_llvm_library() -> tuple[Path, int] | None:
    """(path, major version) of the newest libLLVM shared library in the system folders, or None."""
    found = []
    for folder in _LLVM_DIRS:
        for path in Path(folder).glob("libLLVM*.so*"):
            match = re.search(r"libLLVM(?:-|\.so\.)(\d+)", path.name)
            if match:
                found.append((int(match.group(1)), path))
    if not found:
        return None
    major, path = max(found)
    return path, major


def select_llvm() -> None:
    """Point Dr.Jit at the newest libLLVM unless DRJIT_LIBLLVM_PATH already names one.

    Raises:
        SyntheticDataError: no libLLVM, or only versions whose JIT aborts the process.
    """
    if os.environ.get("DRJIT_LIBLLVM_PATH"):
        return
    newest = newest_llvm_library()
    if newest is None or newest[1] < MIN_LLVM_MAJOR:
        have = "none" if newest is None else f"libLLVM {newest[1]} at {newest[0]}"
        raise SyntheticDataError(
            f"Mitsuba's JIT needs libLLVM {MIN_LLVM_MAJOR} or newer (found {have}); install it "
            "(Debian: apt-get install libllvm19, as `make test` does) or set DRJIT_LIBLLVM_PATH")
    os.environ["DRJIT_LIBLLVM_PATH"] = str(newest[0])


def _mitsuba():
    select_llvm()
    try:
        import mitsuba as mi
    except ImportError as err:  # optional dependency (extras "train")
        raise SyntheticDataError(f"the generator needs Mitsuba 3 (pip install mitsuba): {err}") from err
    if mi.variant() != MITSUBA_VARIANT:
        mi.set_variant(MITSUBA_VARIANT)
    _register_shading_integrator(mi)
    return mi


def _register_shading_integrator(mi) -> None:
    """Register `mvinverse_gt`: radiance plus diffuse shading and geometry AOVs in one pass.

    Shading is E/pi at the first hit: direct light by emitter sampling with a white Lambertian lobe,
    plus indirect light along one cosine-sampled direction from Mitsuba's own path tracer minus the
    emission it sees first (that part is the direct term's). The radiance is Mitsuba's path tracer.
    """
    if getattr(mi, "_mvinverse_gt_registered", False):
        return
    import drjit as dr

    class GroundTruthIntegrator(mi.SamplingIntegrator):
        def __init__(self, props):
            super().__init__(props)
            depth = props.get("max_depth", MAX_DEPTH)
            self.path = mi.load_dict({"type": "path", "max_depth": depth})
            self.indirect = mi.load_dict({"type": "path", "max_depth": depth - 1})

        def aov_names(self):
            return ["sh.R", "sh.G", "sh.B", "al.R", "al.G", "al.B", "px", "py", "pz", "nx", "ny", "nz", "valid"]

        def sample(self, scene, sampler, ray, medium=None, active=True):
            radiance, _, _ = self.path.sample(scene, sampler, ray, medium, active)
            si = scene.ray_intersect(mi.Ray3f(ray), active)
            hit = active & si.is_valid()
            valid = hit & ~si.shape.is_emitter()
            n = si.sh_frame.n
            n = dr.select(dr.dot(n, ray.d) > 0, -n, n)
            ds, em_weight = scene.sample_emitter_direction(si, sampler.next_2d(valid), True, valid)
            direct = em_weight * dr.maximum(dr.dot(n, ds.d), 0.0) / dr.pi
            local = mi.warp.square_to_cosine_hemisphere(sampler.next_2d(valid))
            ray2 = si.spawn_ray(mi.Frame3f(n).to_world(local))
            incoming, _, _ = self.indirect.sample(scene, sampler, mi.RayDifferential3f(ray2), medium, valid)
            si2 = scene.ray_intersect(ray2, valid)
            seen_emission = si2.emitter(scene, valid).eval(si2, valid)
            shading = dr.select(valid, direct + incoming - seen_emission, 0.0)
            albedo = dr.select(valid, si.bsdf(ray).eval_diffuse_reflectance(si, valid), 0.0)
            p = dr.select(hit, si.p, 0.0)
            aovs = [shading.x, shading.y, shading.z, albedo.x, albedo.y, albedo.z, p.x, p.y, p.z, n.x, n.y, n.z,
                    dr.select(valid, 1.0, 0.0)]
            return radiance, hit, [mi.Float(a) for a in aovs]

    mi.register_integrator("mvinverse_gt", lambda props: GroundTruthIntegrator(props))
    mi._mvinverse_gt_registered = True


def _transform(mi, shape: dict):
    angle, axis = shape["rotation"]
    return (mi.ScalarTransform4f().translate(shape["centre"]).rotate(axis, angle).scale(shape["scale"]))


def _bsdf(mi, material: Material, maps_pass: bool, diffuse_only: bool) -> dict:
    """The shape's BSDF; in the maps pass, a diffuse whose reflectance is (roughness, metallic, 0)."""
    if maps_pass:
        maps = [material.roughness, material.metallic, 0.0]
        inner = {"type": "diffuse", "reflectance": {"type": "rgb", "value": maps}}
    else:
        if material.base_colour.ndim == 1:
            base = {"type": "rgb", "value": material.base_colour.tolist()}
        else:
            base = {"type": "bitmap", "bitmap": mi.Bitmap(material.base_colour), "raw": True, "filter_type": "nearest"}
        inner = ({"type": "diffuse", "reflectance": base} if diffuse_only else
                 {"type": "principled", "base_color": base, "roughness": material.roughness,
                  "metallic": material.metallic})
    return {"type": "twosided", "bsdf": inner}


def scene_dict(mi, scene: dict, settings: RenderSettings, maps_pass: bool) -> dict:
    """The Mitsuba scene dictionary of a scene description (main pass or roughness/metallic pass)."""
    integrator = {"type": "aov", "aovs": "rm:albedo"} if maps_pass else {"type": "mvinverse_gt", "max_depth": MAX_DEPTH}
    out = {"type": "scene", "integrator": integrator}
    spp = settings.aov_spp if maps_pass else settings.spp
    for v, pose in enumerate(scene["poses"]):
        out[f"camera{v:02d}"] = {
            "type": "perspective", "fov": scene["hfov"], "fov_axis": "x",
            "to_world": mi.ScalarTransform4f(pose @ OPTICAL_TO_MITSUBA_CAMERA),
            "film": {"type": "hdrfilm", "width": settings.width, "height": settings.height, "rfilter": {"type": "box"},
                     "pixel_format": "rgb"},
            "sampler": {"type": "independent", "sample_count": spp}}
    for i, shape in enumerate(scene["shapes"]):
        entry = {"type": shape["kind"], "bsdf": _bsdf(mi, shape["material"], maps_pass, settings.diffuse_only)}
        if shape["kind"] == "sphere":
            entry.update(center=shape["centre"], radius=shape["scale"][0])
        else:
            entry["to_world"] = _transform(mi, shape)
        out[f"shape{i:02d}"] = entry
    if maps_pass:
        return out
    for i, light in enumerate(scene["lights"]):
        if light["kind"] == "point":
            out[f"light{i}"] = {"type": "point", "position": light["position"],
                                "intensity": {"type": "rgb", "value": light["intensity"]}}
        elif light["kind"] == "area":
            # Facing down (flip of the +z rectangle normal) from just under the ceiling.
            down = mi.ScalarTransform4f().translate(light["centre"]).rotate([1, 0, 0], 180).scale(light["scale"])
            out[f"light{i}"] = {"type": "rectangle", "to_world": down,
                                "emitter": {"type": "area", "radiance": {"type": "rgb", "value": light["radiance"]}}}
        else:
            out[f"light{i}"] = {"type": "constant", "radiance": {"type": "rgb", "value": light["radiance"]}}
    return out


# ---------------------------------------------------------------- rendering


def render_scene(seed: int, index: int, n_views: int, settings: RenderSettings) -> dict[str, np.ndarray]:
    """Render scene `index` of the data set `seed` with `n_views` views; returns the stored arrays."""
    mi = _mitsuba()
    rng = np.random.default_rng([seed, index])
    desc = random_scene(rng, n_views, settings)
    main = mi.load_dict(scene_dict(mi, desc, settings, maps_pass=False))
    maps = mi.load_dict(scene_dict(mi, desc, settings, maps_pass=True))
    render_seed = int(rng.integers(2**31))
    linear, shading, albedo, position, normal, valid, rough_metal = [], [], [], [], [], [], []
    for v in range(n_views):
        img = np.array(mi.render(main, sensor=v, seed=render_seed + v), dtype=np.float32)
        linear.append(img[..., 0:3])
        shading.append(img[..., 3:6])
        albedo.append(img[..., 6:9])
        position.append(img[..., 9:12])
        normal.append(img[..., 12:15])
        valid.append(img[..., 15])
        rough_metal.append(np.array(mi.render(maps, sensor=v, seed=render_seed + v), dtype=np.float32)[..., 0:2])
    linear, shading, position, normal = map(np.stack, (linear, shading, position, normal))
    valid = np.stack(valid) > 0.999
    # One exposure per scene: the 97th percentile of luminance at 0.9 unless that pushes more than
    # 3% of the shading over 1 (the network's shading is a sigmoid; shading is clipped to [0, 1]).
    luminance = linear @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    exposure = min(0.9 / max(float(np.percentile(luminance, 97)), 1e-4),
                   1.0 / max(float(np.percentile(shading.max(-1)[valid], 97)) if valid.any() else 0.0, 1e-4))
    poses = desc["poses"]
    world_to_cam = np.linalg.inv(poses)
    cam_points = np.einsum("nij,nhwj->nhwi", world_to_cam[:, :3, :3], position) + world_to_cam[:, None, None, :3, 3]
    cam_normals = np.einsum("nij,nhwj->nhwi", world_to_cam[:, :3, :3], normal)
    cam_normals /= np.maximum(np.linalg.norm(cam_normals, axis=-1, keepdims=True), 1e-6)
    depth = np.where(valid, cam_points[..., 2], 0.0)
    rough_metal = np.stack(rough_metal)

    def to_u8(x):
        return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)

    return {
        "rgb": to_u8(linear_to_srgb(linear * exposure)),
        "albedo": to_u8(np.stack(albedo)),
        "roughness": to_u8(rough_metal[..., 0]),
        "metallic": to_u8(rough_metal[..., 1]),
        "normal": np.where(valid[..., None], cam_normals, 0.0).astype(np.float16),
        "shading": np.clip(shading * exposure, 0, 1).astype(np.float16),
        "depth": depth.astype(np.float32),
        "valid": valid,
        "K": np.repeat(desc["K"][None], n_views, 0).astype(np.float32),
        "cam_to_world": poses.astype(np.float32),
        "exposure": np.float32(exposure),
        "linear_rgb": (linear * exposure).astype(np.float16),
    }


def scene_views(seed: int, index: int, min_views: int, max_views: int) -> int:
    """How many views scene `index` gets (deterministic, independent of rendering)."""
    return int(np.random.default_rng([seed, index, 1]).integers(min_views, max_views + 1))


def generate(out_dir: str | Path, scenes: int, min_views: int, max_views: int, seed: int, settings: RenderSettings,
             first: int = 0) -> list[Path]:
    """Render `scenes` scenes into `out_dir/scene_XXXXX.npz`; existing files are kept (resumable).

    Raises:
        SyntheticDataError: bad view counts or an unwritable output folder.
    """
    from tqdm import tqdm

    if not 1 <= min_views <= max_views:
        raise SyntheticDataError(f"views must satisfy 1 <= min <= max, got {min_views}..{max_views}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SyntheticDataError(f"cannot create {out}: {err}") from err
    paths = []
    for index in tqdm(range(first, first + scenes), desc="scenes", unit="scene"):
        path = out / f"scene_{index:05d}.npz"
        if not path.exists():
            arrays = render_scene(seed, index, scene_views(seed, index, min_views, max_views), settings)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **{k: v for k, v in arrays.items() if k != "linear_rgb"})
            tmp.rename(path)
        paths.append(path)
    return paths


def load_scene(path: str | Path) -> dict[str, np.ndarray]:
    """One stored scene as float32 arrays (rgb/albedo/roughness/metallic in [0, 1]).

    Raises:
        SyntheticDataError: missing or unreadable file.
    """
    try:
        with np.load(path) as data:
            raw = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise SyntheticDataError(f"cannot read scene {path}: {err}") from err
    out = {k: (v.astype(np.float32) / 255 if v.dtype == np.uint8 else v) for k, v in raw.items()}
    for key in ("normal", "shading", "depth", "linear_rgb"):
        if key in out:
            out[key] = out[key].astype(np.float32)
    return out
