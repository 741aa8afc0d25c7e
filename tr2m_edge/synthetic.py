"""Procedural RGB-D scenes with metric ground truth and scene captions (numpy only).

Every scene is ray-cast through a pinhole camera with known intrinsics: a ground plane,
a back wall, optional side walls, and a few boxes, spheres and upright cylinders standing
on the ground. Surfaces carry procedural textures (wood grain, tiles, stone noise), a
directional light with cast shadows, an ambient term and exponential fog, so the image
holds the usual monocular depth cues (perspective, texture gradient, occlusion, shading,
haze). Ground truth is planar z-depth in metres.

Three families differ in metric scale only. A scene is laid out in units of its size
``s`` (the distance to the back wall) and then scaled to metres, so the picture of a
tabletop (s = 0.8-1.35 m), a room (s = 3-9 m) and a street (s = 15-72 m) come from the
same distribution: the image alone cannot tell how far away things are, while the
caption ("a small wooden tabletop with two mugs ...", "a cobbled street with two vans
...") can. This is exactly the ambiguity TR2M resolves with text, and it lets tests check
that a trained head uses the caption. Object sizes follow the scale (mugs of 4-16 cm on a
table, vans of 2-9 m in a street). Visible depth: tabletop about 0.2-1.5 m, room
0.7-10 m, street 3.5-80 m.

The runtime streams these scenes too, so this module imports no PyTorch;
``tr2m_edge.train.datasets.synthetic`` wraps it as a torch ``Dataset``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from tr2m_edge.errors import InputError

FAMILIES = ("tabletop", "room", "street")


@dataclass(frozen=True)
class _Family:
    scale: tuple[float, float]  # size s (metres to the back wall), drawn log-uniformly
    surfaces: dict[str, str]  # texture kind -> how the caption names the scene
    nouns: dict[str, tuple[str, ...]]  # primitive kind -> object names
    wall: str  # what a side wall is called


_FAMILY_SPECS = {
    "tabletop": _Family(
        scale=(0.8, 1.35),
        surfaces={"wood": "wooden tabletop", "tiles": "tiled tabletop", "stone": "marble tabletop"},
        nouns={"box": ("book", "box"), "sphere": ("apple", "ball"), "cylinder": ("mug", "can")},
        wall="a shelf",
    ),
    "room": _Family(
        scale=(3.0, 9.0),
        surfaces={"wood": "wood-floored room", "tiles": "tiled room", "stone": "carpeted room"},
        nouns={"box": ("cabinet", "sofa"), "sphere": ("globe lamp", "beanbag"), "cylinder": ("pillar", "stool")},
        wall="a wall",
    ),
    "street": _Family(
        scale=(15.0, 72.0),
        surfaces={"wood": "brick-paved street", "tiles": "cobbled street", "stone": "asphalt street"},
        nouns={"box": ("van", "kiosk"), "sphere": ("tree", "bush"), "cylinder": ("advertising column", "silo")},
        wall="a building",
    ),
}
_TEXTURES = ("wood", "tiles", "stone")
_NUMBERS = ("no", "one", "two", "three", "four", "five", "six")
_EPS = 1e-4
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


# ----------------------------------------------------------------------- primitives
# Each primitive returns the ray parameter t of the first hit (inf where missed) for rays
# origin O (N,3) / direction D (N,3), and the unit normals and texture coordinates at hits.

@dataclass
class _Prim:
    kind: str  # plane | box | sphere | cylinder
    params: dict
    albedo: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (u, v) scene units -> (N,3) colour
    shininess: float = 0.0
    casts_shadow: bool = True


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise dot product of (N,3)/(3,) arrays (a (3,) array stands for every row)."""
    if x.ndim == 1 or y.ndim == 1:
        return x @ y if x.ndim == 2 or y.ndim == 1 else y @ x
    return np.einsum("ij,ij->i", x, y)


def _count(o: np.ndarray, d: np.ndarray) -> int:
    return max(len(o) if o.ndim == 2 else 1, len(d) if d.ndim == 2 else 1)


def _hit_plane(p: _Prim, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    axis, value = p.params["axis"], p.params["value"]
    dk = d[..., axis]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (value - o[..., axis]) / dk
    return np.broadcast_to(np.where((np.abs(dk) > 1e-9) & (t > _EPS), t, np.inf), (_count(o, d),))


def _hit_sphere(p: _Prim, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    oc = o - p.params["center"]
    a = _dot(d, d)
    b = _dot(d, oc)
    c = _dot(oc, oc) - p.params["radius"] ** 2
    disc = b * b - a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    t0, t1 = (-b - root) / a, (-b + root) / a
    t = np.where(t0 > _EPS, t0, np.where(t1 > _EPS, t1, np.inf))
    return np.broadcast_to(np.where(disc >= 0, t, np.inf), (_count(o, d),))


def _rotation(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]], dtype=np.float32)


def _hit_box(p: _Prim, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    rot = _rotation(p.params["yaw"])  # rays in the box frame: translated, rotated by -yaw
    lo, ld = (o - p.params["center"]) @ rot.T, d @ rot.T
    half = p.params["half"]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(ld) < 1e-9, 1e-9, ld)
    t_a, t_b = (-half - lo) * inv, (half - lo) * inv
    lo_t, hi_t = np.minimum(t_a, t_b), np.maximum(t_a, t_b)
    t_near = np.maximum(np.maximum(lo_t[..., 0], lo_t[..., 1]), lo_t[..., 2])
    t_far = np.minimum(np.minimum(hi_t[..., 0], hi_t[..., 1]), hi_t[..., 2])
    t = np.where(t_near > _EPS, t_near, t_far)
    return np.broadcast_to(np.where((t_near <= t_far) & (t > _EPS), t, np.inf), (_count(o, d),))


def _hit_cylinder(p: _Prim, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    cx, cz = p.params["center"][0], p.params["center"][2]
    r, height = p.params["radius"], p.params["height"]
    ox, oz, oy = o[..., 0] - cx, o[..., 2] - cz, o[..., 1]
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    a = dx ** 2 + dz ** 2
    b = ox * dx + oz * dz
    c = ox ** 2 + oz ** 2 - r * r
    disc = b * b - a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    a_safe = np.where(a < 1e-12, 1e-12, a)
    best = np.full(_count(o, d), np.inf, dtype=np.float32)
    for t in ((-b - root) / a_safe, (-b + root) / a_safe):
        y = oy + t * dy
        ok = (disc >= 0) & (a > 1e-12) & (t > _EPS) & (y >= 0) & (y <= height)
        best = np.where(ok & (t < best), t, best)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_cap = (height - oy) / dy
    xc, zc = ox + t_cap * dx, oz + t_cap * dz
    cap_ok = (np.abs(dy) > 1e-9) & (t_cap > _EPS) & (xc ** 2 + zc ** 2 <= r * r)
    return np.where(cap_ok & (t_cap < best), t_cap, best)


_HIT = {"plane": _hit_plane, "sphere": _hit_sphere, "box": _hit_box, "cylinder": _hit_cylinder}


def _bounds(p: _Prim) -> tuple[np.ndarray, float]:
    """Centre and radius of a sphere enclosing a box or cylinder."""
    if p.kind == "box":
        return p.params["center"], float(np.linalg.norm(p.params["half"]))
    r, hh = p.params["radius"], 0.5 * p.params["height"]
    return p.params["center"] + np.array([0.0, hh, 0.0], dtype=np.float32), math.hypot(r, hh)


def _hit(p: _Prim, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """First-hit t (N,) of ``p`` for rays from ``o`` along ``d``, each (N,3) or one shared (3,).

    Boxes and cylinders are tested only on the rays that meet their bounding sphere
    (most rays miss a small object)."""
    if p.kind in ("plane", "sphere"):
        return _HIT[p.kind](p, o, d)
    centre, radius = _bounds(p)
    bound = _Prim("sphere", {"center": centre, "radius": radius * 1.001}, p.albedo)
    cand = np.flatnonzero(np.isfinite(_hit_sphere(bound, o, d)))  # includes rays starting inside
    t = np.full(_count(o, d), np.inf, dtype=np.float32)
    if len(cand):
        t[cand] = _HIT[p.kind](p, o if o.ndim == 1 else o[cand], d if d.ndim == 1 else d[cand])
    return t


def _surface(p: _Prim, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit normals (N,3) and texture coordinates u, v (N,) at hit points on ``p``."""
    n = np.zeros_like(pts)
    if p.kind == "plane":
        axis = p.params["axis"]
        n[:, axis] = p.params["normal_sign"]
        u_axis, v_axis = [k for k in range(3) if k != axis]
        return n, pts[:, u_axis], pts[:, v_axis]
    if p.kind == "sphere":
        n = (pts - p.params["center"]) / p.params["radius"]
        u = np.arctan2(n[:, 0], n[:, 2]) * p.params["radius"]
        return n, u, np.arccos(np.clip(n[:, 1], -1, 1)) * p.params["radius"]
    if p.kind == "cylinder":
        rel = pts - p.params["center"]
        top = rel[:, 1] >= p.params["height"] - 1e-4 * max(p.params["height"], 1e-3)
        side = np.stack([rel[:, 0], np.zeros_like(rel[:, 0]), rel[:, 2]], axis=1) / p.params["radius"]
        n = np.where(top[:, None], np.array([0.0, 1.0, 0.0], dtype=np.float32), side)
        u = np.where(top, rel[:, 0], np.arctan2(rel[:, 0], rel[:, 2]) * p.params["radius"])
        return n, u, np.where(top, rel[:, 2], rel[:, 1])
    # box: the face whose slab the point lies on (largest normalised coordinate)
    rot = _rotation(p.params["yaw"])
    lp = (pts - p.params["center"]) @ rot.T
    q = lp / p.params["half"]
    axis = np.argmax(np.abs(q), axis=1)
    ln = np.zeros_like(lp)
    ln[np.arange(len(lp)), axis] = np.sign(q[np.arange(len(lp)), axis])
    n = ln @ rot  # back to world (inverse of the orthonormal rotation)
    u = np.where(axis == 0, lp[:, 2], lp[:, 0])
    v = np.where(axis == 1, lp[:, 2], lp[:, 1])
    return n, u, v


# ----------------------------------------------------------------------- textures

class _Noise:
    """Smooth value noise on a periodic random lattice (bilinear, smoothstep-faded)."""

    def __init__(self, rng: np.random.Generator, size: int = 64) -> None:
        self.table = rng.random((size, size), dtype=np.float32)
        self.size = size

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        x0, y0 = np.floor(u), np.floor(v)
        fx, fy = u - x0, v - y0
        fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
        i0 = x0.astype(np.int64) % self.size
        j0 = y0.astype(np.int64) % self.size
        i1, j1 = (i0 + 1) % self.size, (j0 + 1) % self.size
        t = self.table
        top = t[i0, j0] * (1 - fx) + t[i1, j0] * fx
        bot = t[i0, j1] * (1 - fx) + t[i1, j1] * fx
        return top * (1 - fy) + bot * fy

    def fbm(self, u: np.ndarray, v: np.ndarray, octaves: int = 3) -> np.ndarray:
        out, amp, norm = np.zeros_like(u), 1.0, 0.0
        for k in range(octaves):
            out += amp * self(u * 2 ** k + 17.0 * k, v * 2 ** k - 11.0 * k)
            norm += amp
            amp *= 0.5
        return out / norm


def _texture(kind: str, base: np.ndarray, freq: float, rng: np.random.Generator) -> Callable:
    """A procedural albedo function (u, v in scene units) -> (N, 3) colours in [0, 1]."""
    noise = _Noise(rng)
    second = np.clip(base * rng.uniform(0.55, 0.8), 0, 1)

    if kind == "wood":
        def wood(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            warp = noise.fbm(u * freq * 0.5, v * freq * 4.0)
            grain = 0.5 + 0.5 * np.sin(2 * np.pi * (u * freq * 3.0 + 2.5 * warp))
            planks = (np.floor(v * freq) % 2) * 0.08
            k = (0.7 + 0.3 * grain - planks)[:, None]
            return base * k + second * (1 - k) * 0.5
        return wood
    if kind == "tiles":
        grout = np.array([0.82, 0.8, 0.76], dtype=np.float32)

        def tiles(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            a, b = u * freq, v * freq
            checker = ((np.floor(a) + np.floor(b)) % 2)[:, None]
            col = base * (1 - checker) + second * checker
            col = col * (0.9 + 0.1 * noise(a * 4, b * 4))[:, None]
            edge = (np.minimum(a - np.floor(a), b - np.floor(b)) < 0.06)[:, None]
            return np.where(edge, grout, col)
        return tiles

    def stone(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        n = noise.fbm(u * freq * 2.0, v * freq * 2.0, octaves=4)[:, None]
        return base * (0.55 + 0.6 * n) + second * 0.1
    return stone


def _colour(rng: np.random.Generator, kind: str) -> np.ndarray:
    palettes = {
        "wood": [(0.55, 0.36, 0.2), (0.68, 0.5, 0.32), (0.4, 0.26, 0.16)],
        "tiles": [(0.75, 0.74, 0.7), (0.5, 0.55, 0.6), (0.62, 0.42, 0.35)],
        "stone": [(0.45, 0.45, 0.46), (0.62, 0.6, 0.55), (0.35, 0.36, 0.4)],
        "object": [(0.75, 0.2, 0.15), (0.2, 0.45, 0.75), (0.85, 0.7, 0.2), (0.25, 0.6, 0.3), (0.85, 0.85, 0.85),
                   (0.55, 0.3, 0.6)],
        "wall": [(0.8, 0.78, 0.72), (0.6, 0.68, 0.72), (0.72, 0.62, 0.52), (0.55, 0.55, 0.5)],
    }
    options = palettes[kind]
    base = np.array(options[rng.integers(len(options))], dtype=np.float32)
    return np.clip(base * rng.uniform(0.85, 1.15, size=3).astype(np.float32), 0.02, 1.0)


# ----------------------------------------------------------------------- scene

def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _pick_family(seed: int, families: Sequence[str]) -> str:
    rng = np.random.default_rng([int(seed), 0x5CE7E])
    return families[int(rng.integers(len(families)))]


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise InputError(f"Unknown scene family '{family}'. Available: {', '.join(FAMILIES)}.")


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 8:
        raise InputError(f"Scene size must be (height, width) with both >= 8 pixels; got {tuple(size)}.")
    return int(size[0]), int(size[1])


def _plural(noun: str, count: int) -> str:
    if count == 1:
        return ("an " if noun[0] in "aeiou" else "a ") + noun
    plural = noun + ("es" if noun.endswith(("sh", "ch", "x", "s")) else "s")
    return f"{_NUMBERS[count]} {plural}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


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


def _caption(spec: _Family, family: str, s: float, ground_kind: str, objects: list[str],
             sides: list[str], temperature: float, intensity: float, fog_k: float) -> str:
    lo, hi = spec.scale
    q = math.log(s / lo) / math.log(hi / lo)
    size_word = "small " if q < 1 / 3 else ("large " if q > 2 / 3 else "")
    counts: dict[str, int] = {}
    for noun in objects:
        counts[noun] = counts.get(noun, 0) + 1
    things = _join([_plural(noun, c) for noun, c in counts.items()]) if counts else ""
    place = spec.surfaces[ground_kind]
    article = "an" if (size_word or place)[0] in "aeiou" else "a"
    text = f"{article} {size_word}{place}" + (f" with {things}" if things else "")
    if sides:
        where = "on both sides" if len(sides) == 2 else f"on the {sides[0]}"
        text += f", {spec.wall} {where}"
    if temperature > 0.35:
        light = "warm light"
    elif temperature < -0.35:
        light = "cool light"
    else:
        light = "bright light" if intensity > 1.0 else "soft light"
    text += f" under {light}"
    if fog_k > 0.8:
        text += " in thick haze" if family != "tabletop" else " in a haze of steam"
    return text


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
