"""Model loading and the resumable training state stored in checkpoints.

Random-weight encoders (the ``tiny`` preset) are rebuilt exactly from the config alone
(each random encoder spec carries its seed), so the model a head was trained with is the
model every later stage rebuilds. Resume state (optimizer, EMA key branch, AMP scaler, RNGs) goes into
``Checkpoint.extra`` as tensors and primitives only, so ``torch.load(weights_only=True)``
still reads every file the trainer writes.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tr2m_edge.checkpoint import Checkpoint, load_checkpoint
from tr2m_edge.model import TR2M, build_model
from tr2m_edge.model.encoder_sources import EncoderSources, with_encoder_sources


def load_trained_model(path: str | Path, device: str | torch.device = "cpu",
                       sources: EncoderSources | None = None) -> tuple[TR2M, Checkpoint]:
    """A checkpoint and its model (random encoders rebuilt from their specs' seeds), in eval mode.

    ``sources`` loads the frozen encoders from elsewhere than the checkpoint's config says
    (``--depth-model`` ...); the returned checkpoint's config records them.
    """
    ckpt = load_checkpoint(path)
    if sources:
        ckpt = dataclasses.replace(ckpt, config=with_encoder_sources(ckpt.config, sources))
    model = build_model(ckpt.config, head_state=ckpt.head)
    return model.to(device).eval(), ckpt


def capture_rng() -> dict[str, Any]:
    """Global RNG states (torch, CUDA, numpy, python) as tensors and primitives."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
