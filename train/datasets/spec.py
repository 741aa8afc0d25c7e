"""What a run names as a dataset (:class:`DatasetSpec`) and the one entry point that opens it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from tr2m_edge.config import check_input_size
from tr2m_edge.errors import ConfigError, DataError
from tr2m_edge.synthetic import FAMILIES
from tr2m_edge.train.augment import AugmentConfig
from tr2m_edge.train.captions import CaptionSource
from tr2m_edge.train.datasets.base import PROTOCOLS, DepthDataset, Protocol, get_protocol
from tr2m_edge.train.datasets.folder import FolderDataset
from tr2m_edge.train.datasets.public import C3vdDataset, KittiDataset, NyuDataset, VoidDataset
from tr2m_edge.train.datasets.synthetic import SyntheticDataset
from tr2m_edge.train.datasets.teacher import TeacherDataset
from tr2m_edge.train.datasets.zeroshot import (DiodeDataset, HypersimDataset, IbimsDataset, SimcolDataset,
                                               SunRgbdDataset)

DATASET_NAMES = tuple(PROTOCOLS)
ZERO_SHOT_NAMES = ("sunrgbd", "ibims", "diode_outdoor", "hypersim", "simcol")  # evaluation-only sets
_READERS = {"nyu": NyuDataset, "kitti": KittiDataset, "void": VoidDataset, "c3vd": C3vdDataset, "folder": FolderDataset,
            "sunrgbd": SunRgbdDataset, "ibims": IbimsDataset, "diode_outdoor": DiodeDataset,
            "hypersim": HypersimDataset, "simcol": SimcolDataset, "teacher": TeacherDataset}


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a training or evaluation run (a JSON object in the train config)."""

    name: str  # nyu | kitti | void | c3vd | folder | synthetic | sunrgbd | ibims | diode_outdoor | hypersim | simcol
    root: str | None = None  # dataset folder (not used by synthetic)
    split: str = "train"
    captions: str | None = None  # caption folder or one-line-per-sample file; default ROOT/text/<name>/<split>
    default_caption: str | None = None  # used where a caption file is missing
    count: int = 64  # synthetic: number of scenes
    seed: int = 0  # synthetic: scene stream seed
    families: tuple[str, ...] = FAMILIES  # synthetic: scene families
    variance_focus: float | None = None  # SILog lambda; None: the dataset's protocol value
    min_depth: float | None = None  # valid range; None: the dataset's protocol value
    max_depth: float | None = None
    input_size: tuple[int, int] | None = None  # training input (h, w) of this dataset; None: the model's

    def __post_init__(self) -> None:
        object.__setattr__(self, "families", tuple(self.families))
        if self.input_size is not None:
            object.__setattr__(self, "input_size", check_input_size(tuple(self.input_size)))
        if self.name not in PROTOCOLS:
            raise ConfigError(f"Unknown dataset '{self.name}'. Available: {', '.join(PROTOCOLS)}.")
        if self.name != "synthetic" and not self.root:
            raise ConfigError(f"Dataset '{self.name}' needs a root folder.")
        if self.name == "synthetic" and self.count <= 0:
            raise ConfigError(f"A synthetic dataset needs count > 0; got {self.count}.")
        proto = self.protocol
        if not (math.isfinite(proto.min_depth) and math.isfinite(proto.max_depth)
                and 0 <= proto.min_depth < proto.max_depth):
            raise ConfigError(f"The valid depth range of '{self.name}' must satisfy 0 <= min_depth < max_depth; got "
                              f"min_depth {proto.min_depth:g}, max_depth {proto.max_depth:g} (--min-depth/--max-depth).")

    @property
    def protocol(self) -> Protocol:
        """The dataset's protocol with this spec's overrides applied."""
        base = get_protocol(self.name)
        changes = {}
        if self.variance_focus is not None:
            changes["variance_focus"] = float(self.variance_focus)
        if self.min_depth is not None:
            changes["min_depth"] = float(self.min_depth)
        if self.max_depth is not None:
            changes["max_depth"] = float(self.max_depth)
        return replace(base, **changes) if changes else base


def open_dataset(
    spec: DatasetSpec, size: tuple[int, int] | None = None, augment: AugmentConfig | None = None
) -> DepthDataset:
    """Open the dataset ``spec`` names.

    Args:
        spec: which dataset, where, which split and where its captions are.
        size: training (height, width) every training-view sample is resized to.
        augment: augmentations for the training view; None for none.
    """
    if spec.name == "synthetic":
        render = size or (140, 182)
        ds: DepthDataset = SyntheticDataset(spec.count, render, spec.seed, spec.families, augment)
    else:
        root = Path(spec.root or "")
        if not root.is_dir():
            raise DataError(f"Dataset root {root} does not exist or is not a folder (dataset '{spec.name}').")
        captions = None
        if spec.captions is not None:
            captions = CaptionSource(spec.captions, spec.default_caption)
        ds = _READERS[spec.name](root, spec.split, captions=captions, size=size, augment=augment,
                                 default_caption=spec.default_caption)
    ds.protocol = spec.protocol
    return ds


def default_augment(spec: DatasetSpec) -> AugmentConfig:
    """The paper's augmentation for a dataset (NYU uses the wider brightness range)."""
    return AugmentConfig(brightness=spec.protocol.brightness)


__all__ = ["DATASET_NAMES", "ZERO_SHOT_NAMES", "DatasetSpec", "open_dataset", "default_augment"]
