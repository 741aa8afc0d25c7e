"""The TR2M head trainer: frozen encoders, four losses, EMA key branch, exact resume, DDP.

One process or many (``torchrun --nproc_per_node N $(which tr2m-edge) train ...``): each
process trains on its share of every global batch (:class:`BatchPlan`), gradients are
averaged by DistributedDataParallel, rank 0 writes checkpoints and logs.

Per step: images are normalised at the training input size; the frozen encoders run
under ``no_grad`` (their outputs cached per frame when augmentation is off); captions
are embedded once each (LRU cache); the head predicts A, B and D_m; the losses of
:mod:`tr2m_edge.train.losses` are weighted and summed; AdamW steps with gradient clipping
(AMP on CUDA); the EMA key branch follows. ``last.pt`` holds everything needed to
continue bit for bit; ``best.pt`` is the head with the best validation metric.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from torch import nn
from torch.utils.data import DataLoader

from tr2m_edge.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tr2m_edge.config import PATCH_SIZE
from tr2m_edge.errors import CheckpointError, ConfigError
from tr2m_edge.fileio import prepare_output_dir
from tr2m_edge.metrics import LOWER_IS_BETTER
from tr2m_edge.model import ScaleMapHead, build_head, build_model, metric_from_relative
from tr2m_edge.preprocess import preprocess_tensor
from tr2m_edge.train import distributed as D
from tr2m_edge.train.config import TrainConfig
from tr2m_edge.train.datasets import default_augment, open_dataset
from tr2m_edge.train.evaluation import embed_captions, evaluate
from tr2m_edge.train.losses import (coarse_contrast_loss, depth_classes, edge_aware_smoothness, fine_contrast_loss,
                                    silog_loss, teacher_ab_loss, tpsi_loss)
from tr2m_edge.train.state import capture_rng, restore_rng

log = logging.getLogger(__name__)
TEXT_CACHE_SIZE = 50_000


class HeadStep(nn.Module):
    """The head's training forward: (D_r, F_I, text embedding) -> D_m, A, B, mid, pooled.

    Same computation as ``ScaleMapHead.forward_frame`` plus the features the contrasts
    need: the scale branch's "mid" pixel embeddings (B, mid, 8h, 8w) and the average-
    pooled fused tokens (B, C). A module so DistributedDataParallel can wrap it.
    """

    def __init__(self, head: ScaleMapHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, rel: torch.Tensor, feats: torch.Tensor, text_emb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        grid = (rel.shape[-2] // PATCH_SIZE, rel.shape[-1] // PATCH_SIZE)
        bias = self.head.scene_bias(text_emb)
        x = self.head.crossattn.forward_folded(feats.transpose(0, 1), bias).transpose(0, 1)
        a, b, mid = self.head.decode(x, grid, return_mid=True)
        return metric_from_relative(a, b, rel), a, b, mid, x.mean(1)


@dataclass
class TrainResult:
    out_dir: Path
    last: Path
    best: Path | None
    step: int
    best_metric: float | None
    history: list[dict[str, Any]] = field(default_factory=list)  # the JSON-lines records of this run
    is_main: bool = True  # False on the other ranks of a torchrun job


def _device(choice: str, info_local_rank: int) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(choice)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{choice}' asked for CUDA but no CUDA GPU is available; use device=cpu.")
        if dev.index is None:
            dev = torch.device("cuda", info_local_rank)
    return dev


class Trainer:
    """Train the TR2M head as ``cfg`` describes.

    Args:
        cfg: the training configuration.
        resume: a ``last.pt`` to continue from, "auto" (``out_dir/last.pt`` if present) or None.
    """

    def __init__(self, cfg: TrainConfig, resume: str | Path | None = None) -> None:
        self.cfg = cfg
        kind = "cuda" if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
        self._owns_group = not D.group_active()
        self.dist = D.init_distributed(kind)
        self.device = _device(cfg.device, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.out_dir = Path(cfg.out_dir)
        if self.dist.is_main:
            prepare_output_dir(self.out_dir, "--out (out_dir)")  # before any model is built
        self.model_cfg = cfg.model_config()
        self.model = build_model(self.model_cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.model.head = build_head(self.model_cfg)
        self.model.to(self.device)
        head = self.model.head
        for p in head.crossattn.ln_visual.parameters():  # no effect with one text token (folded path)
            p.requires_grad_(False)
        self.ema = copy.deepcopy(head).requires_grad_(False).eval()
        self.params = [p for p in head.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.use_amp = bool(cfg.amp and self.device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.preprocess = self.model_cfg.preprocess
        size = self.preprocess.input_size
        # per-dataset training input sizes (default: the model's); batches never mix datasets
        self.preprocess_k = [dataclasses.replace(self.preprocess, input_size=s.input_size or size) for s in cfg.train]
        self.datasets = [open_dataset(s, p.input_size, default_augment(s) if cfg.augment else None)
                         for s, p in zip(cfg.train, self.preprocess_k)]
        self.plan = D.BatchPlan([len(d) for d in self.datasets], cfg.batch_size, self.dist.world_size, cfg.seed)
        self.total_steps = cfg.steps or cfg.epochs * self.plan.steps_per_epoch
        self.val_set = open_dataset(cfg.val, size) if cfg.val is not None and self.dist.is_main else None
        self.cache_encoders = self._decide_cache()
        self._enc_cache: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._text_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.step = 0
        self.best: float | None = None
        self.resumed_from: Path | None = None
        if resume is not None:
            path = self.out_dir / "last.pt" if str(resume) == "auto" else Path(resume)
            if str(resume) != "auto" or path.is_file():
                self._load(path)
        step_module = HeadStep(head)
        self.ema_step = HeadStep(self.ema)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_module: nn.Module = nn.parallel.DistributedDataParallel(step_module, device_ids=ids)
        else:
            self.train_module = step_module

    # ------------------------------------------------------------------ setup helpers
    def _decide_cache(self) -> bool:
        if self.cfg.cache_encoders == "off" or self.cfg.augment:
            return False
        if self.cfg.cache_encoders == "on":
            return True
        need = 0
        for ds, pre in zip(self.datasets, self.preprocess_k):
            h, w = pre.input_size
            need += 4 * (h * w + (h // PATCH_SIZE) * (w // PATCH_SIZE) * self.model_cfg.head.in_channels) * len(ds)
        return need <= self.cfg.cache_limit_mb * 2 ** 20

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based)."""
        cfg = self.cfg
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        if cfg.schedule == "exp_epoch":
            return cfg.lr * warm * cfg.lr_decay ** self.plan.epoch_of(step)
        if step < cfg.warmup_steps:
            return cfg.lr * warm
        span = max(1, self.total_steps - cfg.warmup_steps)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - cfg.warmup_steps) / span)))

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, full: bool, metrics: dict[str, float]) -> Checkpoint:
        extra: dict[str, Any] = {
            "train_config": self.cfg.to_dict(),
            "epoch": int(self.plan.epoch_of(max(self.step - 1, 0))), "world_size": int(self.dist.world_size),
        }
        if full:
            extra.update({
                "optimizer": self.optimizer.state_dict(), "ema": {k: v.detach().cpu().clone() for k, v in
                                                                  self.ema.state_dict().items()},
                "scaler": self.scaler.state_dict() if self.use_amp else {}, "rng": capture_rng(),
                "best": self.best,
            })
        head = {k: v.detach().cpu().clone() for k, v in self.model.head.state_dict().items()}
        return Checkpoint(config=self.model_cfg, head=head, step=self.step, metrics=metrics, extra=extra)

    def _load(self, path: Path) -> None:
        ckpt = load_checkpoint(path)
        if ckpt.config.to_dict() != self.model_cfg.to_dict():
            raise CheckpointError(
                f"{path} was trained with model config '{ckpt.config.name}' "
                f"{ckpt.config.preprocess.input_size}, not the '{self.model_cfg.name}' "
                f"{self.model_cfg.preprocess.input_size} this config builds; resume with the same model."
            )
        missing = [k for k in ("optimizer", "ema", "rng") if k not in ckpt.extra]
        if missing:
            raise CheckpointError(f"{path} cannot be resumed from: it lacks {', '.join(missing)} (use last.pt).")
        self.model.head.load_state_dict(ckpt.head)
        self.ema.load_state_dict(ckpt.extra["ema"])
        self.optimizer.load_state_dict(ckpt.extra["optimizer"])
        if self.use_amp and ckpt.extra.get("scaler"):
            self.scaler.load_state_dict(ckpt.extra["scaler"])
        restore_rng(ckpt.extra["rng"])
        self.step = int(ckpt.step)
        self.best = ckpt.extra.get("best")
        self.resumed_from = path
        log.info("resumed from %s at step %d", path, self.step)

    # ------------------------------------------------------------------ per-step pieces
    def _loader(self, k: int, start: int, stop: int) -> Iterator[dict[str, Any]]:
        sampler = D.StepBatchSampler(self.plan, k, start, stop, self.dist.rank)
        if self.cfg.num_workers == 0:
            ds = self.datasets[k]
            return (torch.utils.data.default_collate([ds[key] for key in keys]) for keys in sampler)
        return iter(DataLoader(self.datasets[k], batch_sampler=sampler, num_workers=self.cfg.num_workers,
                               persistent_workers=False))

    @torch.no_grad()
    def _fill_cache(self, chunk: int = 16) -> None:
        """Encode every training frame once, in fixed chunks of dataset order.

        The chunking never depends on batches or on where a run resumed, so cached values
        are identical across resumes and across single- and multi-process runs.
        """
        for k, ds in enumerate(self.datasets):
            for start in range(0, len(ds), chunk):
                idx = list(range(start, min(start + chunk, len(ds))))
                images = torch.stack([ds[(i, 0)]["image"] for i in idx]).to(self.device)
                rel, feats = self.model.encode_frame(preprocess_tensor(images, self.preprocess_k[k]))
                for j, i in enumerate(idx):
                    self._enc_cache[(k, i)] = (rel[j].cpu(), feats[j].cpu())

    @torch.no_grad()
    def _encode(self, pixels: torch.Tensor, indices: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.cache_encoders:
            return self.model.encode_frame(pixels)
        rels, feats = zip(*(self._enc_cache[(k, i)] for i in indices.tolist()))
        return torch.stack(rels).to(self.device), torch.stack(feats).to(self.device)

    @torch.no_grad()
    def _text(self, captions: list[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(c for c in captions if c not in self._text_cache))
        if missing:
            for c, emb in zip(missing, embed_captions(self.model, missing)):
                self._text_cache[c] = emb.cpu()
        for c in captions:
            self._text_cache.move_to_end(c)
        out = torch.stack([self._text_cache[c] for c in captions]).to(self.device)
        while len(self._text_cache) > TEXT_CACHE_SIZE:
            self._text_cache.popitem(last=False)
        return out

    def _train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        cfg, lc = self.cfg, self.cfg.loss
        k = self.plan.dataset_of(step)
        proto = self.datasets[k].protocol
        images = batch["image"].to(self.device)
        gt = batch["depth"].to(self.device)
        pixels = preprocess_tensor(images, self.preprocess_k[k])
        rel, feats = self._encode(pixels, batch["index"], k)
        text = self._text(list(batch["caption"]))
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
            depth, a, b, mid, pooled = self.train_module(rel, feats, text)
        depth, a, b = depth.float(), a.float(), b.float()
        mask = (gt > proto.min_depth) & (gt < proto.max_depth)

        zero = depth.sum() * 0.0
        l_si = silog_loss(depth, gt, mask, proto.variance_focus) if lc.w_si else zero
        l_tpsi, alpha = tpsi_loss(depth, rel.float(), gt, mask, lc.rho, proto.variance_focus,
                                  proto.min_depth, proto.max_depth)
        l_coarse, l_fine = zero, zero
        if lc.w_soc:
            if lc.scale_key == "alpha":
                scales = alpha
            else:
                scales = torch.stack([g[m].median() if m.any() else g.new_zeros(()) for g, m in zip(gt, mask)])
            emb = D.gather_with_grad(pooled.float(), self.dist)
            l_coarse = coarse_contrast_loss(emb, D.all_gather_cat(scales.float(), self.dist),
                                            lc.rank_threshold, lc.coarse_temperature)
            with torch.no_grad():
                key_mid = self.ema_step(rel, feats, text)[3]
            classes = depth_classes(F.interpolate(gt * mask, size=mid.shape[-2:], mode="nearest"),
                                    lc.fine_classes, proto.min_depth, proto.max_depth)
            gens = [torch.Generator().manual_seed(s) for _, s in self.plan.keys(step, self.dist.rank)]
            l_fine = fine_contrast_loss(mid.float(), key_mid.float(), classes, lc.fine_pixels,
                                        lc.fine_temperature, gens)
        l_es = edge_aware_smoothness(a, b, images) if lc.w_es else zero
        l_ab = zero
        if lc.w_ab and "scale" in batch:  # a teacher's A and B (distillation)
            l_ab = teacher_ab_loss(a, b, batch["scale"].to(self.device), batch["shift"].to(self.device))
        # each rank holds the whole gathered coarse loss but only its own slice's gradient;
        # x world size makes the DDP-averaged gradient equal the single-process one
        objective = (lc.w_si * l_si + lc.w_tpsi * l_tpsi + lc.w_soc * (l_coarse * self.dist.world_size + l_fine)
                     + lc.w_es * l_es + lc.w_ab * l_ab)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        with torch.no_grad():
            m = lc.momentum
            for pe, p in zip(self.ema.parameters(), self.model.head.parameters()):
                pe.mul_(m).add_(p.detach(), alpha=1.0 - m)
        parts = {"si": l_si, "tpsi": l_tpsi, "coarse": l_coarse, "fine": l_fine, "es": l_es, "ab": l_ab}
        out = {name: float(v.detach()) for name, v in parts.items()}
        out["loss"] = (lc.w_si * out["si"] + lc.w_tpsi * out["tpsi"] + lc.w_soc * (out["coarse"] + out["fine"])
                       + lc.w_es * out["es"] + lc.w_ab * out["ab"])
        out["grad_norm"] = float(grad_norm)
        return out

    def close(self) -> None:
        """Leave the process group if this trainer joined it (torchrun runs)."""
        if self._owns_group and self.dist.enabled:
            D.shutdown_distributed()

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        """Metrics of the current head on the validation set (rank 0; empty without one)."""
        if self.val_set is None:
            return {}
        self.model.eval()
        try:
            return evaluate(self.model, self.val_set, "official", self.cfg.val_limit).metrics
        finally:
            self.model.train()

    def _improved(self, value: float) -> bool:
        if value != value:  # NaN
            return False
        if self.best is None:
            return True
        lower = self.cfg.val_metric in LOWER_IS_BETTER or self.val_set is None
        return value < self.best if lower else value > self.best

    # ------------------------------------------------------------------ the loop
    def fit(self, until_step: int | None = None) -> TrainResult:
        """Train until ``total_steps`` (or ``until_step``, to stop early), then write last.pt."""
        cfg, main = self.cfg, self.dist.is_main
        stop = self.total_steps if until_step is None else min(self.total_steps, int(until_step))
        history: list[dict[str, Any]] = []
        logf = None
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            logf = (self.out_dir / "log.jsonl").open("a", encoding="utf-8")

        def record(entry: dict[str, Any]) -> None:
            history.append(entry)
            if logf is not None:
                logf.write(json.dumps(entry) + "\n")
                logf.flush()

        if main:
            record({"event": "start", "step": self.step, "total_steps": self.total_steps,
                    "world_size": self.dist.world_size, "device": str(self.device),
                    "resumed_from": str(self.resumed_from) if self.resumed_from else None,
                    "cache_encoders": self.cache_encoders, "config": cfg.to_dict()})
            if self.step == 0 and self.val_set is not None:
                record({"event": "val", "step": 0, "metrics": self.validate()})
        if self.cache_encoders and not self._enc_cache:
            self._fill_cache()
        self.model.train()
        loaders = [self._loader(k, self.step, stop) for k in range(len(self.datasets))]
        window: dict[str, list[float]] = {}
        since_val: list[float] = []
        last_path, best_path = self.out_dir / "last.pt", self.out_dir / "best.pt"
        console = Console(stderr=True)
        columns = (TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TextColumn("ETA"),
                   TimeRemainingColumn())
        bar = Progress(*columns, console=console, disable=not (main and cfg.progress))
        t0 = time.perf_counter()
        with bar, self._save_on_interrupt(record, last_path):
            task = bar.add_task("train", total=stop, completed=self.step, loss="-")
            for step in range(self.step, stop):
                batch = next(loaders[self.plan.dataset_of(step)])
                lr = self.lr_at(step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                parts = self._train_step(batch, step)
                self.step = step + 1
                for name, v in parts.items():
                    window.setdefault(name, []).append(v)
                since_val.append(parts["loss"])
                if self.step % cfg.log_every == 0 or self.step == stop:
                    means = D.mean_across({n: float(np.mean(v)) for n, v in window.items()}, self.dist, self.device)
                    window = {}
                    if main:
                        record({"event": "train", "step": self.step, "epoch": self.plan.epoch_of(step), "lr": lr,
                                **{n: round(v, 7) for n, v in means.items()},
                                "seconds": round(time.perf_counter() - t0, 2)})
                    bar.update(task, completed=self.step, loss=f"{means['loss']:.4f}")
                if self.step % cfg.val_every == 0 or self.step == self.total_steps:
                    self._validate_and_keep(record, since_val, best_path)
                    since_val = []
                if main and (self.step % cfg.ckpt_every == 0 or self.step == stop):
                    save_checkpoint(self._checkpoint(True, {}), last_path)
        D.barrier(self.dist)
        if logf is not None:
            logf.close()
        return TrainResult(self.out_dir, last_path, best_path if best_path.is_file() else None, self.step,
                           self.best, history, main)

    @contextlib.contextmanager
    def _save_on_interrupt(self, record: Any, last_path: Path) -> Iterator[None]:
        """Ctrl-C or SIGTERM: write last.pt at the step reached (resume continues from it), then stop."""
        try:
            yield
        except KeyboardInterrupt:
            if self.dist.is_main and self.step > 0:
                save_checkpoint(self._checkpoint(True, {}), last_path)
                record({"event": "interrupted", "step": self.step, "last": str(last_path)})
                log.warning("interrupted at step %d: wrote %s (resume with --resume auto)", self.step, last_path)
            raise

    def _validate_and_keep(self, record: Any, since_val: list[float], best_path: Path) -> None:
        if not self.dist.is_main:
            return
        if self.val_set is not None:
            metrics = self.validate()
            value = metrics.get(self.cfg.val_metric, float("nan"))
        else:  # no validation set: the mean training loss since the last check picks best.pt
            mean_loss = float(np.mean(since_val)) if since_val else float("nan")
            metrics, value = {"train_loss": mean_loss}, mean_loss
        improved = self._improved(value)
        if improved:
            self.best = value
            save_checkpoint(self._checkpoint(False, metrics), best_path)
        record({"event": "val", "step": self.step, "metrics": metrics, "best": improved})


def train(cfg: TrainConfig, resume: str | Path | None = None) -> TrainResult:
    """Build a :class:`Trainer` for ``cfg`` (resuming if asked), run it to the end, clean up."""
    trainer = Trainer(cfg, resume=resume)
    try:
        return trainer.fit()
    finally:
        trainer.close()
