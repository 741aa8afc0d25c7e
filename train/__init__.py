"""Training and evaluation of the TR2M head: datasets, synthetic scenes, losses, trainer.

Heavy modules load on first use, so ``import tr2m_edge.train`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "TrainConfig": "config", "load_train_config": "config",
    "DatasetSpec": "datasets", "open_dataset": "datasets", "DATASET_NAMES": "datasets",
    "DepthDataset": "datasets", "FolderDataset": "datasets", "PROTOCOLS": "datasets", "Protocol": "datasets",
    "NyuDataset": "datasets", "KittiDataset": "datasets", "VoidDataset": "datasets", "C3vdDataset": "datasets",
    "SyntheticDataset": "datasets", "CaptionSource": "captions", "AugmentConfig": "augment",
    "LossConfig": "losses", "Trainer": "trainer", "TrainResult": "trainer",
    "evaluate": "evaluation", "evaluate_checkpoint": "evaluation", "EvalResult": "evaluation",
    "load_trained_model": "state",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"tr2m_edge.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tr2m_edge.train' has no attribute '{name}'")
