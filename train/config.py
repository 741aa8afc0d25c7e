"""The training configuration: one frozen dataclass, read from JSON, with CLI overrides.

A config names the model (a preset name or a full model config), the training and
validation datasets, the optimiser and schedule, the losses and the bookkeeping.
``tr2m-edge train --write-config FILE`` writes the defaults as a starting point; any field
can be overridden with ``--set dotted.key=value`` (value parsed as JSON, else a string),
e.g. ``--set loss.w_es=0.02 --set train.0.root=/data/nyu``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tr2m_edge.config import ModelConfig, check_input_size, get_preset
from tr2m_edge.errors import ConfigError
from tr2m_edge.metrics import METRIC_NAMES
from tr2m_edge.schema import build
from tr2m_edge.train.datasets import DatasetSpec
from tr2m_edge.train.losses import LossConfig

SCHEDULES = ("exp_epoch", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; saved in every checkpoint it writes."""

    model: str | dict[str, Any] = "tiny"  # preset name or a ModelConfig dict
    input_size: tuple[int, int] | None = None  # training input (h, w); None: the model's
    train: tuple[DatasetSpec, ...] = (DatasetSpec("synthetic", count=96, seed=0),)  # mixed round-robin
    val: DatasetSpec | None = DatasetSpec("synthetic", split="val", count=24, seed=1000)
    val_limit: int | None = None  # evaluate at most this many validation images
    out_dir: str = "runs/tr2m"
    steps: int = 0  # optimiser steps; 0: epochs x steps per epoch
    epochs: int = 20
    batch_size: int = 8  # per process (global batch = batch_size x processes)
    lr: float = 1e-5
    weight_decay: float = 1e-2
    schedule: str = "exp_epoch"  # exp_epoch: lr x lr_decay each epoch (paper); cosine: warmup + cosine
    lr_decay: float = 0.9
    warmup_steps: int = 0
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    amp: bool = True  # mixed precision (CUDA only; ignored on the CPU)
    augment: bool = True  # flip + photometric augmentations of the paper
    cache_encoders: str = "auto"  # auto: cache frozen-encoder outputs when augment is off and they fit
    cache_limit_mb: int = 2048  # auto-caching only when the cache stays under this size
    loss: LossConfig = field(default_factory=LossConfig)
    ckpt_every: int = 500  # write last.pt every N steps (and at the end)
    val_every: int = 500  # validate (and maybe write best.pt) every N steps (and at the end)
    val_metric: str = "abs_rel"  # metric that picks best.pt
    log_every: int = 10  # JSON-lines log and progress-bar update every N steps
    seed: int = 0  # data order, augmentation, head initialisation
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = 0  # data-loading worker processes per training process
    progress: bool = True  # rich progress bar

    def __post_init__(self) -> None:
        if self.input_size is not None:
            object.__setattr__(self, "input_size", check_input_size(tuple(self.input_size)))
        object.__setattr__(self, "train", tuple(self.train))
        if not self.train:
            raise ConfigError("The train config needs at least one dataset under 'train'.")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"Unknown schedule '{self.schedule}'. Available: {', '.join(SCHEDULES)}.")
        if self.cache_encoders not in ("auto", "on", "off"):
            raise ConfigError(f"cache_encoders must be auto, on or off; got '{self.cache_encoders}'.")
        if self.cache_encoders == "on" and self.augment:
            raise ConfigError("cache_encoders=on needs augment=false: augmented images change the encoder outputs.")
        if self.val_metric not in METRIC_NAMES:
            raise ConfigError(f"Unknown val_metric '{self.val_metric}'. Available: {', '.join(METRIC_NAMES)}.")
        for name in ("batch_size", "ckpt_every", "val_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}.")
        if self.val_limit is not None and self.val_limit < 0:
            raise ConfigError(f"val_limit must be >= 0 (or null for all); got {self.val_limit}.")
        if self.steps < 0 or self.epochs < 1 or self.lr <= 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            raise ConfigError("Need steps >= 0, epochs >= 1, lr > 0, grad_clip >= 0 and warmup_steps >= 0.")
        self.model_config()  # validate early

    def model_config(self) -> ModelConfig:
        """The model config (preset or embedded), with the training input size applied."""
        if isinstance(self.model, str):
            cfg = get_preset(self.model)
        elif isinstance(self.model, ModelConfig):
            cfg = self.model
        else:
            cfg = ModelConfig.from_dict(self.model)
        return cfg.replace(input_size=self.input_size) if self.input_size is not None else cfg

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if isinstance(self.model, ModelConfig):
            d["model"] = self.model.to_dict()
        return json.loads(json.dumps(d))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "train config") -> "TrainConfig":
        """Read a train config; every field type-checked (:func:`tr2m_edge.schema.build`)."""
        return build(cls, data, where, labels={cls: "train config", LossConfig: "loss", DatasetSpec: "dataset"})


def with_default_caption(cfg: TrainConfig, caption: str) -> TrainConfig:
    """``cfg`` with ``caption`` as the default caption of every dataset that has none."""

    def fill(spec: DatasetSpec) -> DatasetSpec:
        return spec if spec.default_caption else dataclasses.replace(spec, default_caption=caption)

    return dataclasses.replace(cfg, train=tuple(fill(s) for s in cfg.train),
                               val=fill(cfg.val) if cfg.val is not None else None)


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a JSON train config (None: the defaults) and apply ``key=value`` overrides."""
    if path is None:
        data = TrainConfig().to_dict()
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Train config not found: {p}. Write one with `tr2m-edge train --write-config {p}`.")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"Train config {p} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                              "save it as UTF-8 JSON.") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Train config {p} is not valid JSON: {exc}.") from None
    for item in overrides or []:
        _apply(data, item)
    return TrainConfig.from_dict(data)


def _apply(data: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"Override '{item}' must look like key=value (e.g. loss.w_es=0.02).")
    key, raw = item.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"Override '{key}': '{part}' is not an index of a list of {len(node)}.")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise ConfigError(f"Override '{key}': '{'.'.join(parts[:i])}' is not an object or list.")
