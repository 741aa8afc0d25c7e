"""Scene primitives (plane, box, sphere, cylinder), ray intersection and surface normals/coordinates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

_EPS = 1e-4


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
