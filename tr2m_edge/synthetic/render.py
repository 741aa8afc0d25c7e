"""Render one scene (layout, ray casting, shading, camera) and the seeded scene stream."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from tr2m_edge.errors import InputError
from tr2m_edge.synthetic.families import FAMILIES, _FAMILY_SPECS, _TEXTURES, _caption, _check_family, _pick_family
from tr2m_edge.synthetic.materials import _colour, _texture
from tr2m_edge.synthetic.raytrace import _dot, _hit, _Prim, _surface

_GAMMA = (np.linspace(0.0, 1.0, 4096, dtype=np.float32) ** (1 / 2.2)).astype(np.float32)  # display gamma LUT


@dataclass
class SyntheticFrame:
    """One rendered scene.

    Attributes:
        rgb: (H, W, 3) uint8 image, RGB order.
        depth: (H, W) float32 planar depth in metres, > 0 everywhere.
        caption: one-line description built from the scene's parameters.
        family: one of :data:`FAMILIES`.
        intrinsics: (3, 3) float32 pinhole matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels.
    """

    rgb: np.ndarray
    depth: np.ndarray
    caption: str
    family: str
    intrinsics: np.ndarray


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 8:
        raise InputError(f"Scene size must be (height, width) with both >= 8 pixels; got {tuple(size)}.")
    return int(size[0]), int(size[1])


_REMEMBERED: dict[tuple[int, int, int, str], SyntheticFrame] | None = None  # see remembered_scenes


@contextlib.contextmanager
def remembered_scenes() -> Iterator[None]:
    """Inside this block :func:`render_scene` renders each (seed, size, family) once.

    Later calls get a copy of the first render (the same pixels, ~1000x cheaper), so
    several datasets over the same scenes (the demo's trainings and evaluations) render
    them once. Nested blocks share the outer block's store; it is dropped at the end.
    """
    global _REMEMBERED
    outer = _REMEMBERED
    if outer is None:
        _REMEMBERED = {}
    try:
        yield
    finally:
        _REMEMBERED = outer


def _copy(frame: SyntheticFrame) -> SyntheticFrame:
    return dataclasses.replace(frame, rgb=frame.rgb.copy(), depth=frame.depth.copy(),
                               intrinsics=frame.intrinsics.copy())


def render_scene(seed: int, size: tuple[int, int] = (140, 182), family: str | None = None) -> SyntheticFrame:
    """Render one scene, deterministically from ``seed``.

    Args:
        seed: any integer; the same seed always gives the same frame.
        size: (height, width) in pixels.
        family: one of :data:`FAMILIES`, or None to choose it from the seed.

    Returns:
        A :class:`SyntheticFrame` with RGB, metric depth (H, W), caption and intrinsics.
    """
    h, w = _check_size(size)
    family = _pick_family(seed, FAMILIES) if family is None else family
    _check_family(family)
    store = _REMEMBERED
    key = (int(seed), h, w, family)
    if store is not None and key in store:
        return _copy(store[key])
    frame = _render(seed, h, w, family)
    if store is not None:
        store[key] = _copy(frame)
    return frame


def _render(seed: int, h: int, w: int, family: str) -> SyntheticFrame:
    """The ray caster behind :func:`render_scene` (arguments already checked)."""
    spec = _FAMILY_SPECS[family]
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFF, 0x7A3])

    # ---- layout in scene units (back wall at z = 1), scaled to metres by s
    s = _log_uniform(rng, *spec.scale)
    cam_h = rng.uniform(0.14, 0.3)
    pitch = math.radians(rng.uniform(6.0, 20.0))
    hfov = math.radians(rng.uniform(55.0, 70.0))
    f = 0.5 * w / math.tan(0.5 * hfov)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0

    ground_kind = _TEXTURES[int(rng.integers(len(_TEXTURES)))]
    ground = _Prim("plane", {"axis": 1, "value": 0.0, "normal_sign": 1.0},
                   _texture(ground_kind, _colour(rng, ground_kind), rng.uniform(4.0, 9.0), rng), casts_shadow=False)
    wall_kind = _TEXTURES[int(rng.integers(len(_TEXTURES)))]
    back = _Prim("plane", {"axis": 2, "value": 1.0, "normal_sign": -1.0},
                 _texture(wall_kind, _colour(rng, "wall"), rng.uniform(2.0, 6.0), rng), casts_shadow=False)
    prims = [ground, back]
    sides: list[tuple[str, int]] = []  # (side, primitive index)
    for side, sign in (("left", -1.0), ("right", 1.0)):
        if rng.random() < 0.45:
            sides.append((side, len(prims)))
            prims.append(_Prim("plane", {"axis": 0, "value": sign * rng.uniform(0.35, 0.7), "normal_sign": -sign},
                               _texture("stone", _colour(rng, "wall"), rng.uniform(2.0, 6.0), rng),
                               casts_shadow=False))

    objects: list[tuple[str, int]] = []  # (noun, primitive index)
    n_obj = int(rng.integers(1, 6))
    for _ in range(n_obj):
        kind = ("box", "sphere", "cylinder")[int(rng.integers(3))]
        z = rng.uniform(0.3, 0.85)
        x = rng.uniform(-0.55, 0.55) * z * math.tan(0.5 * hfov)
        size_u = rng.uniform(0.03, 0.09)
        albedo = _texture(("stone", "tiles", "wood")[int(rng.integers(3))], _colour(rng, "object"),
                          rng.uniform(15.0, 40.0), rng)
        if kind == "box":
            half = np.array([size_u * rng.uniform(0.6, 1.6), size_u * rng.uniform(0.5, 1.5),
                             size_u * rng.uniform(0.6, 1.6)], dtype=np.float32)
            params = {"center": np.array([x, half[1], z], dtype=np.float32), "half": half,
                      "yaw": rng.uniform(-0.8, 0.8)}
        elif kind == "sphere":
            params = {"center": np.array([x, size_u, z], dtype=np.float32), "radius": size_u}
        else:
            params = {"center": np.array([x, 0.0, z], dtype=np.float32), "radius": size_u * 0.7,
                      "height": size_u * rng.uniform(1.2, 3.0)}
        prims.append(_Prim(kind, params, albedo, shininess=rng.uniform(0.0, 0.5)))
        nouns = spec.nouns[kind]
        objects.append((nouns[int(rng.integers(len(nouns)))], len(prims) - 1))

    light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(0.6, 1.2), rng.uniform(-0.9, 0.2)], dtype=np.float32)
    light /= np.linalg.norm(light)
    temperature = rng.uniform(-1.0, 1.0)  # < 0 cool, > 0 warm
    light_rgb = np.array([1.0 + 0.18 * temperature, 1.0, 1.0 - 0.22 * temperature], dtype=np.float32)
    intensity = rng.uniform(0.6, 1.25)
    ambient = rng.uniform(0.2, 0.4)
    fog_k = rng.uniform(0.0, 1.3) if rng.random() < 0.7 else 0.0
    fog_rgb = np.array([0.72, 0.74, 0.78], dtype=np.float32) * rng.uniform(0.8, 1.1)

    # ---- primary rays (camera at height cam_h, pitched down; t is planar depth)
    vs, us = np.mgrid[0:h, 0:w].astype(np.float32)
    fwd = np.array([0.0, -math.sin(pitch), math.cos(pitch)], dtype=np.float32)
    up = np.array([0.0, math.cos(pitch), math.sin(pitch)], dtype=np.float32)
    right = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    dirs = (fwd[None] + ((us - cx) / f).reshape(-1, 1) * right[None]
            - ((vs - cy) / f).reshape(-1, 1) * up[None]).astype(np.float32)
    origin = np.array([0.0, cam_h, 0.0], dtype=np.float32)
    t_best = np.full(len(dirs), np.inf, dtype=np.float32)
    id_best = np.full(len(dirs), -1, dtype=np.int64)
    for k, p in enumerate(prims):
        t = _hit(p, origin, dirs)
        closer = t < t_best
        t_best = np.where(closer, t, t_best)
        id_best[closer] = k
    # every forward ray meets the back wall, so t_best is finite

    pts = origin + t_best[:, None] * dirs
    colour = np.zeros_like(pts)
    normals = np.zeros_like(pts)
    order = np.argsort(id_best, kind="stable")
    bounds = np.searchsorted(id_best[order], np.arange(len(prims) + 1))
    for k, p in enumerate(prims):
        m = order[bounds[k]:bounds[k + 1]]  # the pixels that see primitive k
        if len(m):
            n, u, v = _surface(p, pts[m])
            colour[m] = p.albedo(u.astype(np.float32), v.astype(np.float32))
            normals[m] = n

    # shadows: rays toward the light, blocked by objects only
    shadow_o = pts + 1e-3 * normals
    lit = np.ones(len(pts), dtype=np.float32)
    for p in prims:
        if p.casts_shadow:
            lit = np.where(np.isfinite(_hit(p, shadow_o, light)), 0.0, lit)
    lambert = np.clip(normals @ light, 0.0, None) * lit
    view = -dirs / np.sqrt(_dot(dirs, dirs))[:, None]
    half_vec = view + light
    half_vec /= np.sqrt(_dot(half_vec, half_vec))[:, None]
    shininess = np.array([p.shininess for p in prims], dtype=np.float32)[id_best]
    spec_term = shininess * np.clip(_dot(normals, half_vec), 0, 1) ** 24 * lit
    shaded = colour * (ambient + intensity * lambert[:, None]) * light_rgb + spec_term[:, None] * light_rgb
    haze = np.exp(-fog_k * t_best)[:, None]
    shaded = shaded * haze + fog_rgb * (1 - haze)

    # camera: vignetting, gamma, sensor noise
    rr = (((us - cx) / w) ** 2 + ((vs - cy) / h) ** 2).reshape(-1, 1)
    shaded = shaded * (1.0 - 0.35 * rr)
    img = _GAMMA[(np.clip(shaded, 0, 1) * (len(_GAMMA) - 1)).astype(np.int32)]
    img = img + 0.012 * rng.standard_normal(img.shape, dtype=np.float32)
    rgb = (np.clip(img, 0, 1) * 255.0 + 0.5).astype(np.uint8).reshape(h, w, 3)
    depth = (t_best * s).astype(np.float32).reshape(h, w)
    intrinsics = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=np.float32)

    seen = np.bincount(id_best, minlength=len(prims))
    walls = [side for side, k in sides if seen[k] >= 0.02 * h * w]  # name only what is in view
    things = [noun for noun, k in objects if seen[k] >= 0.002 * h * w]
    caption = _caption(spec, family, s, ground_kind, things, walls, temperature, intensity, fog_k)
    return SyntheticFrame(rgb=rgb, depth=depth, caption=caption, family=family, intrinsics=intrinsics)


def scene_seed(seed: int, index: int) -> int:
    """The per-scene seed of the ``index``-th scene of a stream started with ``seed``."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0])


def scene_family(seed: int, index: int, families: Sequence[str] = FAMILIES) -> str:
    """The family of the ``index``-th scene of a stream (families cycle, so every batch mixes them)."""
    if not families:
        raise InputError(f"families must name at least one of {', '.join(FAMILIES)}.")
    for fam in families:
        _check_family(fam)
    return families[(int(index) + int(seed)) % len(families)]


def iter_scenes(
    count: int | None, size: tuple[int, int] = (140, 182), seed: int = 0, families: Sequence[str] = FAMILIES
) -> Iterator[SyntheticFrame]:
    """Yield ``count`` scenes (None: endlessly); scene i uses :func:`scene_seed` (seed, i).

    Families cycle through ``families`` in order, so any window of len(families)
    consecutive scenes holds each family once.
    """
    if count is not None and count < 0:
        raise InputError(f"count must be >= 0 or None (endless); got {count}.")
    families = tuple(families)
    index = 0
    while count is None or index < count:
        yield render_scene(scene_seed(seed, index), size, scene_family(seed, index, families))
        index += 1
