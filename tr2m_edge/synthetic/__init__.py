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

The runtime streams these scenes too, so this package imports no PyTorch;
``tr2m_edge.train.datasets.synthetic`` wraps it as a torch ``Dataset``.

``families``: the three scene families and the caption built for a scene; ``materials``:
value noise, procedural textures and colour palettes; ``raytrace``: the primitives and
ray/surface intersection; ``render``: :func:`render_scene` and the seeded scene stream.
Only ``render`` imports the other three, and no submodule imports this package.
"""

from __future__ import annotations

from tr2m_edge.synthetic.families import FAMILIES, SIZE_WORDS, caption_scale
from tr2m_edge.synthetic.render import (SyntheticFrame, iter_scenes, remembered_scenes, render_scene, scene_family,
                                        scene_seed)

__all__ = ["FAMILIES", "SIZE_WORDS", "caption_scale", "SyntheticFrame", "render_scene", "iter_scenes", "scene_seed", "scene_family",
           "remembered_scenes"]
