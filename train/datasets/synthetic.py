"""The procedural scenes of :mod:`tr2m_edge.synthetic` as a torch ``Dataset``.

Scene ``i`` is the ``i``-th scene of ``iter_scenes(count, size, seed, families)``; frames
are rendered on first use and kept in memory (``cache=True``), so epochs after the first
cost nothing. Each frame carries one caption (built from its parameters); its ``group`` is
its scene family.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tr2m_edge.errors import DataError
from tr2m_edge.synthetic import FAMILIES, SyntheticFrame, render_scene, scene_family, scene_seed
from tr2m_edge.train.augment import AugmentConfig
from tr2m_edge.train.captions import CaptionSource
from tr2m_edge.train.datasets.base import DepthDataset


class SyntheticDataset(DepthDataset):
    """``count`` procedural RGB-D scenes with metric depth and captions.

    Args:
        count: number of scenes (> 0).
        size: rendered (height, width); frames are rendered at this size.
        seed: stream seed (different seeds give disjoint scene sets).
        families: which scene families to cycle through.
        augment: training augmentations, or None.
        cache: keep rendered frames in memory.
    """

    def __init__(
        self,
        count: int,
        size: tuple[int, int] = (140, 182),
        seed: int = 0,
        families: Sequence[str] = FAMILIES,
        augment: AugmentConfig | None = None,
        cache: bool = True,
    ) -> None:
        if count <= 0:
            raise DataError(f"A synthetic dataset needs count > 0 scenes; got {count}.")
        super().__init__("synthetic", f"seed{seed}", CaptionSource(None, default="synthetic scene"),
                         size=size, augment=augment)
        self.count = int(count)
        self.seed = int(seed)
        self.families = tuple(families)
        self.render_size = (int(size[0]), int(size[1]))
        self.cache = cache
        self._frames: dict[int, SyntheticFrame] = {}
        for fam in self.families:  # validate early
            scene_family(0, 0, (fam,))

    def __len__(self) -> int:
        return self.count

    def frame(self, index: int) -> SyntheticFrame:
        """The rendered scene ``index`` (cached when ``cache`` is on)."""
        found = self._frames.get(index)
        if found is not None:
            return found
        frame = render_scene(scene_seed(self.seed, index), self.render_size,
                             scene_family(self.seed, index, self.families))
        if self.cache:
            self._frames[index] = frame
        return frame

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        f = self.frame(index)
        return f.rgb, f.depth

    def caption_lines(self, index: int) -> list[str]:
        return [self.frame(index).caption]

    def group(self, index: int) -> str:
        return scene_family(self.seed, index, self.families)
