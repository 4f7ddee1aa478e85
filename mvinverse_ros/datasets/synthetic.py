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


@dataclass(frozen=True)
class SceneStyle:
    """The distribution rooms are drawn from; training and held-out evaluation use different ones.

    The held-out style has object kinds and light set-ups that training never shows, so its scores
    say how the model does on rooms it was not fitted to, not only on new draws of the same rooms.

    Attributes:
        objects: {kind: probability} of the objects on the floor (cube, sphere, cylinder, table, panel, disk).
        object_count: (min, max) objects per room.
        metal_p: probability that an object is a metal.
        glossy_p: probability that a dielectric is glossy (roughness 0.03-0.3; else 0.3-1).
        mixed_p: probability that an object's material varies over its surface (two materials in a pattern).
        lighting: {set-up: probability}; `ceiling` point and area lights, `lamps` point lights only,
            `spots` spot lights from the upper corners, `sun` a directional light into an open room.
        camera_distance: (min, max) metres from the cameras' target.
    """

    objects: tuple[tuple[str, float], ...]
    object_count: tuple[int, int]
    metal_p: float
    glossy_p: float
    mixed_p: float
    lighting: tuple[tuple[str, float], ...]
    camera_distance: tuple[float, float]


SCENE_STYLES = {
    "train": SceneStyle(objects=(("cube", 0.4), ("sphere", 0.35), ("cylinder", 0.25)), object_count=(5, 11),
                        metal_p=0.35, glossy_p=0.4, mixed_p=0.3, lighting=(("ceiling", 0.6), ("lamps", 0.4)),
                        camera_distance=(1.3, 2.6)),
    "heldout": SceneStyle(objects=(("table", 0.3), ("panel", 0.2), ("disk", 0.15), ("sphere", 0.2),
                                   ("cylinder", 0.15)), object_count=(4, 9),
                          metal_p=0.45, glossy_p=0.5, mixed_p=0.4, lighting=(("spots", 0.5), ("sun", 0.5)),
                          camera_distance=(1.6, 3.0)),
}


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A linear base colour drawn in a perceptual (HSV-like sRGB) space."""
    hue = rng.uniform(0, 1)
    sat = rng.uniform(0.0, 0.9)
    val = rng.uniform(0.15, 0.95)
    rgb = np.array([abs(((hue * 6 + k) % 6) - 3) - 1 for k in (0, 4, 2)]).clip(0, 1)
    return srgb_to_linear(val * (1 - sat + sat * rgb))


def _pattern(rng: np.random.Generator, size: int = 64, binary: bool = False) -> np.ndarray:
    """A procedural [0, 1] pattern: checker, stripes, or smooth noise (thresholded when `binary`)."""
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
        t = (t > 0.5).astype(np.float32) if binary else t
    return t.astype(np.float32)


def _blend(a, b, t: np.ndarray) -> np.ndarray:
    """Colour a where t is 0, b where t is 1 (t: [S, S]; a, b: RGB or [S, S, 3] textures)."""
    t = t[..., None]
    return (np.asarray(a, np.float32) * (1 - t) + np.asarray(b, np.float32) * t).astype(np.float32)


@dataclass(frozen=True)
class Material:
    """A principled material; each property is a constant or an (S, S[, 3]) texture over the surface."""

    base_colour: np.ndarray
    roughness: float | np.ndarray
    metallic: float | np.ndarray


def _plain_material(rng: np.random.Generator, style: SceneStyle, metal_p: float, textured_p: float) -> Material:
    base = _blend(_random_colour(rng), _random_colour(rng), _pattern(rng)) if rng.uniform() < textured_p \
        else _random_colour(rng)
    if rng.uniform() < metal_p:
        return Material(base, float(rng.uniform(0.03, 0.6)), float(rng.uniform(0.7, 1.0)))
    glossy = rng.uniform() < style.glossy_p
    return Material(base, float(rng.uniform(0.03, 0.3) if glossy else rng.uniform(0.3, 1.0)), 0.0)


def _random_material(rng: np.random.Generator, style: SceneStyle, metal_p: float | None = None,
                     textured_p: float = 0.4, mixed_p: float | None = None) -> Material:
    """A material of the style; with probability `mixed_p` two materials laid out in a pattern."""
    metal_p = style.metal_p if metal_p is None else metal_p
    mixed_p = style.mixed_p if mixed_p is None else mixed_p
    first = _plain_material(rng, style, metal_p, textured_p)
    if rng.uniform() >= mixed_p:
        return first
    second = _plain_material(rng, style, max(metal_p, 0.5), 0.0)
    t = _pattern(rng, binary=True)
    colour = _blend(np.broadcast_to(first.base_colour, (*t.shape, 3)), second.base_colour, t)
    return Material(colour, (first.roughness * (1 - t) + second.roughness * t).astype(np.float32),
                    (first.metallic * (1 - t) + second.metallic * t).astype(np.float32))


def _choose(rng: np.random.Generator, weighted: tuple[tuple[str, float], ...]) -> str:
    names, weights = zip(*weighted)
    return names[rng.choice(len(names), p=np.asarray(weights) / sum(weights))]


def _objects(rng: np.random.Generator, style: SceneStyle) -> list[dict]:
    """Objects standing on the floor near the middle, so every camera sees most of them."""
    shapes = []
    for _ in range(rng.integers(style.object_count[0], style.object_count[1] + 1)):
        size = rng.uniform(0.15, 0.55)
        xy = rng.uniform(-1.3, 1.3, 2)
        material = _random_material(rng, style)
        kind = _choose(rng, style.objects)
        spin = (rng.uniform(0, 90), [0, 0, 1])
        if kind == "cube":
            sz = size * rng.uniform(0.5, 1.0, 3)
            shapes.append(dict(kind="cube", centre=[*xy, sz[2]], rotation=spin, scale=sz, material=material))
        elif kind == "sphere":
            shapes.append(dict(kind="sphere", centre=[*xy, size], rotation=(0, [0, 0, 1]), scale=[size] * 3,
                               material=material))
        elif kind == "cylinder":
            shapes.append(dict(kind="cylinder", centre=[*xy, 0], rotation=(0, [0, 0, 1]),
                               scale=[size * 0.6, size * 0.6, rng.uniform(0.3, 1.2)], material=material))
        elif kind == "table":  # a thin top on one central leg, both of the same material
            top = rng.uniform(0.5, 0.9)
            shapes.append(dict(kind="cube", centre=[*xy, top], rotation=spin, scale=[size * 1.6, size * 1.2, 0.03],
                               material=material))
            shapes.append(dict(kind="cylinder", centre=[*xy, 0], rotation=(0, [0, 0, 1]), scale=[0.05, 0.05, top],
                               material=material))
        elif kind == "panel":  # a board leaning at an angle
            shapes.append(dict(kind="cube", centre=[*xy, size], rotation=(rng.uniform(15, 60), [1, 0, 0]),
                               scale=[size, 0.02, size], material=material))
        else:
            shapes.append(dict(kind="disk", centre=[*xy, rng.uniform(0.3, 1.5)],
                               rotation=(rng.uniform(-40, 40), [1, 0, 0]), scale=[size] * 3, material=material))
    return shapes


def _lights(rng: np.random.Generator, setup: str, half_w: float, half_d: float, height: float,
            closed: bool) -> list[dict]:
    """The lights of one set-up (see SceneStyle.lighting), plus a sky when the room is open."""
    lights = []

    def somewhere(margin, z):
        return [rng.uniform(-half_w + margin, half_w - margin), rng.uniform(-half_d + margin, half_d - margin), z]

    if setup in ("ceiling", "lamps"):
        for _ in range(rng.integers(1, 4)):
            colour = 0.6 + 0.4 * rng.uniform(0, 1, 3)
            lights.append(dict(kind="point", position=somewhere(0.3, rng.uniform(1.5, height - 0.2)),
                               intensity=(rng.uniform(2, 15) * colour).tolist()))
    if setup == "ceiling":
        for _ in range(rng.integers(1, 3)):
            size = rng.uniform(0.2, 0.6)
            lights.append(dict(kind="area", centre=somewhere(0.6, height - 0.01), scale=[size, size, 1],
                               radiance=(rng.uniform(3, 15) * np.ones(3)).tolist()))
    if setup == "spots":
        for _ in range(rng.integers(1, 4)):
            corner = [rng.choice([-1, 1]) * (half_w - 0.2), rng.choice([-1, 1]) * (half_d - 0.2), height - 0.2]
            colour = 0.6 + 0.4 * rng.uniform(0, 1, 3)
            lights.append(dict(kind="spot", position=corner, target=[*rng.uniform(-1, 1, 2), 0.0],
                               cutoff=float(rng.uniform(25, 50)), intensity=(rng.uniform(10, 40) * colour).tolist()))
    if setup == "sun":
        elevation, azimuth = np.radians(rng.uniform(25, 70)), rng.uniform(0, 2 * np.pi)
        direction = -np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                               np.sin(elevation)])
        lights.append(dict(kind="directional", direction=direction.tolist(),
                           irradiance=(rng.uniform(2, 6) * np.array([1.0, 0.95, 0.85])).tolist()))
    if not closed or rng.uniform() < 0.3:
        colour = 0.7 + 0.3 * rng.uniform(0, 1, 3)
        lights.append(dict(kind="constant", radiance=(rng.uniform(0.2, 1.5) * colour).tolist()))
    return lights


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


def random_scene(rng: np.random.Generator, n_views: int, settings: RenderSettings,
                 style: SceneStyle = SCENE_STYLES["train"]) -> dict:
    """A plain-numpy description of one scene: shapes, lights, cameras (no Mitsuba objects)."""
    half_w, half_d = rng.uniform(2.0, 3.5, 2)
    height = rng.uniform(2.5, 3.2)
    lighting = _choose(rng, style.lighting)
    closed = lighting != "sun" and rng.uniform() < 0.5  # sunlight needs an open room
    shapes = []

    def rect(centre, rotation, scale, material):
        shapes.append(dict(kind="rectangle", centre=centre, rotation=rotation, scale=scale, material=material))

    floor = _random_material(rng, style, metal_p=0.05, textured_p=0.7, mixed_p=0.1)
    wall = _random_material(rng, style, metal_p=0.0, textured_p=0.3, mixed_p=0.0)
    rect([0, 0, 0], (0, [1, 0, 0]), [half_w, half_d, 1], floor)
    walls = [([half_w, 0, height / 2], (90, [0, 1, 0]), [height / 2, half_d, 1]),
             ([-half_w, 0, height / 2], (90, [0, 1, 0]), [height / 2, half_d, 1]),
             ([0, half_d, height / 2], (90, [1, 0, 0]), [half_w, height / 2, 1]),
             ([0, -half_d, height / 2], (90, [1, 0, 0]), [half_w, height / 2, 1])]
    keep = range(4) if closed else rng.choice(4, size=rng.integers(1, 4), replace=False)
    for i in keep:
        rect(*walls[i], wall if rng.uniform() < 0.7 else _random_material(rng, style, 0.0, 0.3, 0.0))
    if closed:
        rect([0, 0, height], (0, [1, 0, 0]), [half_w, half_d, 1], _random_material(rng, style, 0.0, 0.1, 0.0))
    shapes += _objects(rng, style)
    lights = _lights(rng, lighting, half_w, half_d, height, closed)

    # Cameras on an arc around a target among the objects: real parallax between views.
    target = np.array([*rng.uniform(-0.6, 0.6, 2), rng.uniform(0.2, 0.7)])
    azimuth0 = rng.uniform(0, 2 * np.pi)
    spread = np.radians(rng.uniform(8, 22))
    distance = rng.uniform(*style.camera_distance)
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


def _texture(mi, value: float | np.ndarray) -> float | dict:
    """A Mitsuba parameter of a material property: a scalar, an RGB constant, or an [S, S(, 3)] texture.

    Textures keep exact values (raw, nearest), so the maps pass reproduces them.
    """
    array = np.asarray(value, np.float32)
    if array.ndim == 0:
        return float(array)
    if array.ndim == 1:
        return {"type": "rgb", "value": array.tolist()}
    return {"type": "bitmap", "bitmap": mi.Bitmap(array if array.ndim == 3 else array[..., None]), "raw": True,
            "filter_type": "nearest"}


def _bsdf(mi, material: Material, maps_pass: bool, diffuse_only: bool) -> dict:
    """The shape's BSDF; in the maps pass, a diffuse whose reflectance is (roughness, metallic, 0)."""
    if maps_pass:
        rough, metal = np.broadcast_arrays(material.roughness, material.metallic)
        inner = {"type": "diffuse", "reflectance": _texture(mi, np.stack([rough, metal, np.zeros_like(rough)], -1))}
    else:
        base = _texture(mi, material.base_colour)
        inner = ({"type": "diffuse", "reflectance": base} if diffuse_only else
                 {"type": "principled", "base_color": base, "roughness": _texture(mi, material.roughness),
                  "metallic": _texture(mi, material.metallic)})
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
        elif light["kind"] == "spot":
            aim = mi.ScalarTransform4f().look_at(origin=light["position"], target=light["target"], up=[0, 0, 1])
            out[f"light{i}"] = {"type": "spot", "to_world": aim, "cutoff_angle": light["cutoff"],
                                "beam_width": light["cutoff"] * 0.75,
                                "intensity": {"type": "rgb", "value": light["intensity"]}}
        elif light["kind"] == "directional":
            out[f"light{i}"] = {"type": "directional", "direction": light["direction"],
                                "irradiance": {"type": "rgb", "value": light["irradiance"]}}
        else:
            out[f"light{i}"] = {"type": "constant", "radiance": {"type": "rgb", "value": light["radiance"]}}
    return out


# ---------------------------------------------------------------- rendering


def render_scene(seed: int, index: int, n_views: int, settings: RenderSettings,
                 style: SceneStyle = SCENE_STYLES["train"]) -> dict[str, np.ndarray]:
    """Render scene `index` of the data set `seed` with `n_views` views; returns the stored arrays."""
    mi = _mitsuba()
    rng = np.random.default_rng([seed, index])
    desc = random_scene(rng, n_views, settings, style)
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
             first: int = 0, style: str = "train") -> list[Path]:
    """Render `scenes` scenes into `out_dir/scene_XXXXX.npz`; existing files are kept (resumable).

    Raises:
        SyntheticDataError: bad view counts or an unwritable output folder.
    """
    from tqdm import tqdm

    if not 1 <= min_views <= max_views:
        raise SyntheticDataError(f"views must satisfy 1 <= min <= max, got {min_views}..{max_views}")
    if style not in SCENE_STYLES:
        raise SyntheticDataError(f"unknown scene style {style!r}; choose from {', '.join(SCENE_STYLES)}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SyntheticDataError(f"cannot create {out}: {err}") from err
    paths = []
    for index in tqdm(range(first, first + scenes), desc="scenes", unit="scene"):
        path = out / f"scene_{index:05d}.npz"
        if not path.exists():
            arrays = render_scene(seed, index, scene_views(seed, index, min_views, max_views), settings,
                                  SCENE_STYLES[style])
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
