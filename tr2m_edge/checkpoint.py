"""Checkpoints: ``best.pt`` / ``last.pt`` as plain dicts, and import of the released weights.

A checkpoint is a dict of tensors and primitives only, loadable with
``torch.load(weights_only=True)``::

    {"format": "tr2m-edge/checkpoint", "format_version": 1, "config": {...ModelConfig...},
     "head": {name: tensor}, "step": int, "metrics": {...}, "extra": {...}}

``extra`` holds whatever else a trainer needs to resume (optimizer, scheduler, EMA, RNG),
also as tensors and primitives. Loading never falls back to unsafe unpickling and never
loads a head partially: missing, unexpected or mis-shaped keys are named in the error.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tr2m_edge.config import ModelConfig, get_preset
from tr2m_edge.errors import CheckpointError, ConfigError
from tr2m_edge.fileio import atomic_writer, check_header
from tr2m_edge.model.head import build_head, check_state_dict, official_filter

FORMAT = "tr2m-edge/checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model config, head weights and training bookkeeping."""

    config: ModelConfig
    head: dict[str, torch.Tensor]
    step: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "head": {k: v.detach().cpu().contiguous() for k, v in self.head.items()},
            "step": int(self.step),
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "extra": self.extra,
        }


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write atomically (temp file + rename): an interrupted save never leaves a corrupt file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path) as fh:
            torch.save(ckpt.to_dict(), fh)
    except OSError as exc:
        raise CheckpointError(f"Cannot write checkpoint to {path}: {exc.strerror}. Choose a writable folder.") from None
    return path


def _read_weights(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"Checkpoint not found: {path}. Check the path (train one with `tr2m-edge train`).")
    if not path.is_file():
        raise CheckpointError(f"Checkpoint path is not a file: {path}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"Cannot read {path} as a PyTorch weight file ({first[:160]}). It is corrupt, truncated, "
            "or holds pickled objects that a safe load refuses; re-save it as plain tensors."
        ) from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a tr2m-edge checkpoint (safe load only)."""
    data = _read_weights(path)
    hint = ""
    if isinstance(data, dict) and ("state_dict" in data or any(str(k).startswith("align_mlp.") for k in data)):
        hint = " It looks like the authors' released weights: convert it with `tr2m-edge import-official`."
    check_header(data, FORMAT, FORMAT_VERSION, CheckpointError, str(path), "tr2m-edge checkpoint", hint=hint)
    try:
        config = ModelConfig.from_dict(data["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{path} holds an invalid model config: {exc}") from None
    except KeyError:
        raise CheckpointError(f"{path} has no model config.") from None
    head = data.get("head")
    if not isinstance(head, dict) or not all(isinstance(v, torch.Tensor) for v in head.values()):
        raise CheckpointError(f"{path} has no head weights (expected a dict of tensors under 'head').")
    return Checkpoint(
        config=config, head=head, step=int(data.get("step", 0)),
        metrics=dict(data.get("metrics", {})), extra=dict(data.get("extra", {})),
    )


def import_official(
    path: str | Path, preset: str = "paper", config: ModelConfig | None = None
) -> Checkpoint:
    """Read the authors' released head weights (``da_s_vitl_vitl.pth``) into a Checkpoint.

    Accepts a plain state_dict or ``{"state_dict": ...}``; every tensor must match the
    preset's head by name and shape.
    """
    data = _read_weights(path)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(
            f"{path} is not a TR2M weight file: expected a state_dict (name -> tensor) or "
            "{'state_dict': ...}."
        )
    cfg = config or get_preset(preset)
    state = official_filter(data)
    with torch.device("meta"):
        head = build_head(cfg)
    check_state_dict(head, state, str(path))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return Checkpoint(config=cfg, head=state, step=0, metrics={}, extra={"imported_from": Path(path).name})


def random_head_checkpoint(cfg: ModelConfig, seed: int = 0) -> Checkpoint:
    """A checkpoint with a random head (tests, benchmarks, demos without training).

    The shift head's output bias is set so that B = 4 / max_depth, i.e. depth starts
    near a quarter of the range where D_r is small, rather than at the clip limit.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = build_head(cfg)
    with torch.no_grad():
        head.output_conv_shift2[2].bias.fill_(math.log(4.0 / (cfg.max_depth * cfg.head.coef_shift)))
    state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    return Checkpoint(config=cfg, head=state, step=0, metrics={}, extra={"random_head_seed": seed})
