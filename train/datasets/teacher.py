"""A teacher's outputs as a dataset: the frames of a distillation run with the teacher's metric
depth as their depth, and the teacher's A and B.

The folder is the generic folder format (rgb/, depth/ as float32 metres, captions/, train.txt,
test.txt; :class:`~tr2m_edge.train.datasets.folder.FolderDataset`) plus ``ab/<name>.npz``
holding the teacher's ``scale`` and ``shift`` at the same size. Written by
:func:`tr2m_edge.train.distill.cache_teacher`; frames are stored at the student's input
size, so no resize ever separates a frame from its targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tr2m_edge.errors import DataError
from tr2m_edge.train.augment import AugmentConfig
from tr2m_edge.train.captions import CaptionSource
from tr2m_edge.train.datasets.folder import FolderDataset


class TeacherDataset(FolderDataset):
    """Frames + the teacher's depth (as ``depth``) and A, B (as ``scale``, ``shift``, (1, h, w))."""

    def __init__(self, root: str | Path, split: str = "train", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        if augment is not None:
            raise DataError("A teacher dataset is not augmented: flips and colour changes would detach the frames "
                            "from the teacher's maps. Set augment to false.")
        super().__init__(root, split, captions, size, None, default_caption)
        self.name = "teacher"
        self.root = Path(root)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        sample = super().__getitem__(key)
        ab = self.root / "ab" / f"{self.samples[sample['index']].rel}.npz"
        if not ab.is_file():
            raise DataError(f"{ab} is missing: the teacher cache is incomplete; delete {self.root} to rebuild it.")
        with np.load(ab) as maps:
            for name in ("scale", "shift"):
                value = np.asarray(maps[name], np.float32)
                if value.shape != tuple(sample["depth"].shape[-2:]):
                    raise DataError(f"{ab} holds a {value.shape} {name} map; its frame is {tuple(sample['depth'].shape[-2:])}.")
                sample[name] = torch.from_numpy(value)[None]
        return sample
