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

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tr2m_edge.config import ModelConfig, get_preset
from tr2m_edge.errors import CheckpointError, ConfigError

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
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(f"Cannot write checkpoint to {path}: {exc.strerror}. Choose a writable folder.") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(ckpt.to_dict(), fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        hint = ""
        if isinstance(data, dict) and ("state_dict" in data or any(k.startswith("align_mlp.") for k in data)):
            hint = " It looks like the authors' released weights: convert it with `tr2m-edge import-official`."
        raise CheckpointError(f"{path} is not a tr2m-edge checkpoint (no '{FORMAT}' format tag).{hint}")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {data['format_version']}; this tr2m-edge reads up to "
            f"{FORMAT_VERSION}. Upgrade tr2m-edge."
        )
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


def check_state_dict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming every missing, unexpected and mis-shaped key."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {_names(misshaped)}")
    if problems:
        raise CheckpointError(
            f"{source} does not fit the head ({'; '.join(problems)}). Check that the file and the preset match."
        )


def _names(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def load_head_state(head: nn.Module, state: dict[str, torch.Tensor], source: str = "The checkpoint") -> None:
    """Strict load: all keys, all shapes, or a CheckpointError that names the offenders."""
    check_state_dict(head, state, source)
    head.load_state_dict(state, strict=True)


# --------------------------------------------------------------- released weights

def official_filter(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a released TR2M head state_dict onto :class:`ScaleMapHead` names.

    Strips a DataParallel ``module.`` prefix, and accepts ``projects.0.*`` /
    ``resize_layers.0.*`` (one-element ModuleLists) as ``projects.*`` / ``resize_layers.*``.
    Unknown keys are kept so the strict check reports them.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        for prefix in ("projects.0.", "resize_layers.0."):
            if k.startswith(prefix):
                k = prefix[:-2] + k[len(prefix):]
        out[k] = value
    return out


def import_official(
    path: str | Path, preset: str = "paper", config: ModelConfig | None = None
) -> Checkpoint:
    """Read the authors' released head weights (``da_s_vitl_vitl.pth``) into a Checkpoint.

    Accepts a plain state_dict or ``{"state_dict": ...}``; every tensor must match the
    preset's head by name and shape.
    """
    from tr2m_edge.model.tr2m import build_head

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
