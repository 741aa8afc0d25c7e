"""The scene families (metric scale, surface and object names) and the caption of a scene."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

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


def _pick_family(seed: int, families: Sequence[str]) -> str:
    rng = np.random.default_rng([int(seed), 0x5CE7E])
    return families[int(rng.integers(len(families)))]


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise InputError(f"Unknown scene family '{family}'. Available: {', '.join(FAMILIES)}.")


def _plural(noun: str, count: int) -> str:
    if count == 1:
        return ("an " if noun[0] in "aeiou" else "a ") + noun
    plural = noun + ("es" if noun.endswith(("sh", "ch", "x", "s")) else "s")
    return f"{_NUMBERS[count]} {plural}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


SIZE_WORDS = ("small", "", "large")  # the lower, middle and upper third of a family's log-scale range


def caption_scale(caption: str) -> tuple[str, str]:
    """What a scene's caption says about its metric scale: (family, size word), the inverse of
    :func:`_caption` for the two parts that carry scale. The size word is one of
    :data:`SIZE_WORDS` ("" for the middle third of the family's range).

    Raises:
        InputError: the caption names no family's surface (not a synthetic scene's caption).
    """
    words = caption.split()
    size = words[1] if len(words) > 1 and words[1] in SIZE_WORDS else ""
    for family, spec in _FAMILY_SPECS.items():
        if any(place in caption for place in spec.surfaces.values()):
            return family, size
    raise InputError(f"Caption {caption!r} names none of the synthetic families' surfaces.")


def _caption(spec: _Family, family: str, s: float, ground_kind: str, objects: list[str],
             sides: list[str], temperature: float, intensity: float, fog_k: float) -> str:
    lo, hi = spec.scale
    q = math.log(s / lo) / math.log(hi / lo)
    size = SIZE_WORDS[0] if q < 1 / 3 else (SIZE_WORDS[2] if q > 2 / 3 else SIZE_WORDS[1])
    size_word = f"{size} " if size else ""
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
