"""Dataset readers of the train layer, one module per concern.

``base``: the sample format, per-dataset protocols, file readers and :class:`DepthDataset`;
``folder``: the generic folder format; ``public``: NYUv2, KITTI, VOID and C3VD in their
published layouts; ``zeroshot``: SUN RGB-D, iBims-1, DIODE outdoor, HyperSim and SimCol,
the zero-shot evaluation sets; ``synthetic``: the procedural scenes as a torch ``Dataset``;
``spec``: :class:`DatasetSpec` and :func:`open_dataset`, which opens any of them.
"""

from __future__ import annotations

from tr2m_edge.train.datasets.base import PROTOCOLS, DepthDataset, Protocol, get_protocol
from tr2m_edge.train.datasets.folder import FolderDataset
from tr2m_edge.train.datasets.public import C3vdDataset, KittiDataset, NyuDataset, VoidDataset
from tr2m_edge.train.datasets.spec import DATASET_NAMES, ZERO_SHOT_NAMES, DatasetSpec, default_augment, open_dataset
from tr2m_edge.train.datasets.synthetic import SyntheticDataset
from tr2m_edge.train.datasets.zeroshot import (DiodeDataset, HypersimDataset, IbimsDataset, SimcolDataset,
                                               SunRgbdDataset)

__all__ = [
    "DATASET_NAMES", "ZERO_SHOT_NAMES", "DatasetSpec", "open_dataset", "default_augment",
    "DepthDataset", "FolderDataset", "Protocol", "PROTOCOLS", "get_protocol",
    "NyuDataset", "KittiDataset", "VoidDataset", "C3vdDataset", "SyntheticDataset",
    "SunRgbdDataset", "IbimsDataset", "DiodeDataset", "HypersimDataset", "SimcolDataset",
]
