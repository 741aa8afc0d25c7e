"""The offline demo: stage 0 relative depth -> TR2M heads and baselines -> export -> run -> comparison.

A layer above train, export and runtime (only the CLI imports it); each step is a library
call of its layer. Heavy modules load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"run_demo": "pipeline", "DemoOptions": "pipeline", "demo_config": "training", "demo_train": "training",
            "demo_model_config": "training", "Stage0Config": "stage0", "train_stage0": "stage0",
            "STAGE0_DIR": "stage0"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"tr2m_edge.demo.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tr2m_edge.demo' has no attribute '{name}'")
