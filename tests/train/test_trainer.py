"""The trainer on synthetic scenes: it learns, it uses the caption, it resumes exactly."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from tr2m_edge.checkpoint import load_checkpoint
from tr2m_edge.errors import CheckpointError, ConfigError
from tr2m_edge.model import build_model
from tr2m_edge.train.config import TrainConfig
from tr2m_edge.train.datasets import DatasetSpec, open_dataset
from tr2m_edge.train.distributed import BatchPlan
from tr2m_edge.train.evaluation import evaluate
from tr2m_edge.train.losses import LossConfig
from tr2m_edge.model import build_model
from tr2m_edge.train.state import load_trained_model
from tr2m_edge.train.trainer import Trainer

SIZE = (84, 112)  # the tiny preset at a smaller input, to keep the CPU run short
HELD_OUT = DatasetSpec("synthetic", split="val", count=30, seed=1000)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Tiny preset, 192 synthetic scenes, 200 steps on the CPU; validated before and after."""
    out = tmp_path_factory.mktemp("learn")
    cfg = TrainConfig(
        model="tiny", input_size=SIZE, train=(DatasetSpec("synthetic", count=192, seed=0),), val=HELD_OUT,
        out_dir=str(out), steps=200, batch_size=8, lr=2e-3, schedule="cosine", warmup_steps=20, augment=False,
        loss=LossConfig(scale_key="depth"), ckpt_every=200, val_every=200, log_every=10, progress=False,
    )
    trainer = Trainer(cfg)
    result = trainer.fit()
    vals = [h for h in result.history if h["event"] == "val"]
    return {"trainer": trainer, "result": result, "before": vals[0]["metrics"], "after": vals[-1]["metrics"],
            "out": out}


def test_training_lowers_absrel_at_least_twofold(trained: dict) -> None:
    before, after = trained["before"]["abs_rel"], trained["after"]["abs_rel"]
    print(f"held-out AbsRel: untrained {before:.3f} -> trained {after:.3f}; d1 {trained['after']['d1']:.3f}")
    assert after <= before / 2
    assert trained["after"]["d1"] > trained["before"]["d1"]
    losses = [h["loss"] for h in trained["result"].history if h["event"] == "train"]
    assert losses[-1] < losses[0] / 1.5


def test_trained_head_uses_the_caption(trained: dict) -> None:
    """Families share one layout distribution at different scales: only the text tells them apart."""
    model = trained["trainer"].model.eval()
    data = open_dataset(HELD_OUT, size=SIZE)
    right = evaluate(model, data).metrics["abs_rel"]
    shuffled = evaluate(model, data, shuffle_captions=0).metrics["abs_rel"]
    print(f"held-out AbsRel with its own captions {right:.3f}, with other families' captions {shuffled:.3f}")
    assert right == pytest.approx(trained["after"]["abs_rel"], rel=1e-9)
    assert shuffled > 1.5 * right


def test_checkpoints_load_safely_and_rebuild_the_same_model(trained: dict) -> None:
    out, result = trained["out"], trained["result"]
    assert result.best == out / "best.pt" and result.last == out / "last.pt" and result.step == 200
    raw = torch.load(out / "last.pt", weights_only=True)
    assert {"optimizer", "ema", "rng", "train_config"} <= set(raw["extra"])
    best = load_checkpoint(out / "best.pt")
    assert best.metrics["abs_rel"] == pytest.approx(trained["after"]["abs_rel"])
    build_model(best.config, head_state=best.head)  # the core builder accepts the trained head
    model, _ = load_trained_model(out / "best.pt")
    again = evaluate(model, open_dataset(HELD_OUT, size=SIZE)).metrics["abs_rel"]
    assert again == pytest.approx(trained["after"]["abs_rel"], rel=1e-6)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert records[0]["event"] == "start" and records[0]["config"]["steps"] == 200
    train_rows = [r for r in records if r["event"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(10, 201, 10))
    assert {"loss", "si", "tpsi", "coarse", "fine", "es", "lr", "grad_norm"} <= set(train_rows[0])


def _small(out: Path, **changes: object) -> TrainConfig:
    cfg = TrainConfig(
        model="tiny", input_size=(56, 70),
        train=(DatasetSpec("synthetic", count=16, seed=0), DatasetSpec("synthetic", count=12, seed=5,
                                                                        families=("street",))),
        val=None, out_dir=str(out), steps=12, batch_size=4, lr=1e-3, schedule="cosine", warmup_steps=3,
        augment=True, ckpt_every=6, val_every=6, log_every=1, progress=False,
    )
    return dataclasses.replace(cfg, **changes)


def test_resume_from_last_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    full = Trainer(_small(tmp_path / "a")).fit()
    first = Trainer(_small(tmp_path / "b")).fit(until_step=6)
    assert first.step == 6 and (tmp_path / "b" / "last.pt").is_file()
    resumed = Trainer(_small(tmp_path / "b"), resume="auto").fit()
    losses_full = [h for h in full.history if h["event"] == "train"]
    losses_resumed = [h for h in resumed.history if h["event"] == "train"]
    assert [h["step"] for h in losses_resumed] == list(range(7, 13))
    for a, b in zip(losses_full[6:], losses_resumed):
        for key in ("loss", "si", "tpsi", "coarse", "fine", "es", "lr"):
            assert a[key] == b[key], (a["step"], key)
    ca, cb = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert all(torch.equal(ca.head[k], cb.head[k]) for k in ca.head)
    assert all(torch.equal(ca.extra["ema"][k], cb.extra["ema"][k]) for k in ca.extra["ema"])
    assert (tmp_path / "b" / "best.pt").is_file(), "without a validation set the training loss picks best.pt"
    assert "train_loss" in load_checkpoint(tmp_path / "b" / "best.pt").metrics
    started = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines() if '"start"' in x]
    assert started[-1]["resumed_from"].endswith("last.pt") and started[-1]["step"] == 6


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path: Path) -> None:
    Trainer(_small(tmp_path, steps=1, augment=False)).fit()
    with pytest.raises(CheckpointError, match=r"was trained with model config 'tiny' \(56, 70\), not the 'tiny' "
                                              r"\(84, 112\)"):
        Trainer(_small(tmp_path, input_size=(84, 112)), resume=tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match="cannot be resumed from: it lacks optimizer, ema, rng"):
        Trainer(_small(tmp_path), resume=tmp_path / "best.pt")


def test_round_robin_plan_covers_each_dataset_and_shards_by_rank() -> None:
    plan = BatchPlan([16, 8], batch_size=2, world_size=2, seed=3)
    assert plan.global_batch == 4 and plan.steps_per_epoch == 2 * 4
    assert [plan.dataset_of(s) for s in range(5)] == [0, 1, 0, 1, 0]
    first_epoch = [i for s in range(0, 8, 2) for i, _ in plan.global_keys(s)]
    assert sorted(first_epoch) == list(range(16)), "one epoch sees every sample of the largest set once"
    small = [i for s in range(1, 8, 2) for i, _ in plan.global_keys(s)]
    assert sorted(small) == sorted(list(range(8)) * 2), "the smaller set cycles, reshuffled"
    assert plan.keys(5, 0) + plan.keys(5, 1) == plan.global_keys(5)
    assert plan.global_keys(5) == BatchPlan([16, 8], 2, 2, 3).global_keys(5)
    with pytest.raises(ConfigError, match="has 8 samples, fewer than one global batch"):
        BatchPlan([8], batch_size=8, world_size=2, seed=0)


def test_learning_rate_schedules(tmp_path: Path) -> None:
    paper = Trainer(_small(tmp_path, schedule="exp_epoch", warmup_steps=0, lr=1e-5, augment=False))
    spe = paper.plan.steps_per_epoch
    assert paper.lr_at(0) == 1e-5 and paper.lr_at(spe) == pytest.approx(0.9e-5)
    assert paper.lr_at(3 * spe + 1) == pytest.approx(1e-5 * 0.9 ** 3)
    cos = Trainer(_small(tmp_path, schedule="cosine", warmup_steps=4, steps=104, augment=False))
    assert cos.lr_at(0) == pytest.approx(1e-3 / 4) and cos.lr_at(3) == pytest.approx(1e-3)
    assert cos.lr_at(54) == pytest.approx(1e-3 * 0.5) and cos.lr_at(103) == pytest.approx(
        1e-3 * 0.5 * (1 + math.cos(math.pi * 99 / 100)))


def test_random_encoders_are_rebuilt_from_the_config(tiny_cfg) -> None:
    torch.manual_seed(123)  # the global RNG state must not matter
    a = build_model(tiny_cfg)
    torch.manual_seed(456)
    b = build_model(tiny_cfg)
    c = build_model(tiny_cfg.replace(image=dataclasses.replace(tiny_cfg.image, seed=1)))
    for enc in ("depth_encoder", "image_encoder", "text_encoder"):
        for pa, pb in zip(getattr(a, enc).parameters(), getattr(b, enc).parameters()):
            assert torch.equal(pa, pb), enc
    pa, pc = (next(m.image_encoder.parameters()) for m in (a, c))
    assert not torch.equal(pa, pc)


def test_worker_processes_load_the_same_batches(tmp_path: Path) -> None:
    a = Trainer(_small(tmp_path / "w0", steps=2, ckpt_every=2, val_every=2)).fit()
    b = Trainer(_small(tmp_path / "w1", steps=2, ckpt_every=2, val_every=2, num_workers=1)).fit()
    assert [h["loss"] for h in a.history if h["event"] == "train"] == \
        [h["loss"] for h in b.history if h["event"] == "train"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_amp_training_on_cuda(tmp_path: Path) -> None:
    result = Trainer(_small(tmp_path, steps=4, device="cuda", amp=True)).fit()
    rows = [h for h in result.history if h["event"] == "train"]
    assert len(rows) == 4 and all(math.isfinite(r["loss"]) for r in rows)
    assert load_checkpoint(tmp_path / "last.pt").extra["scaler"], "the AMP grad scaler state is saved for resume"


def test_datasets_can_train_at_their_own_input_size(tmp_path: Path) -> None:
    cfg = _small(tmp_path, steps=2, train=(DatasetSpec("synthetic", count=8),
                                           DatasetSpec("synthetic", count=8, seed=1, input_size=(42, 56))))
    trainer = Trainer(cfg)
    assert trainer.datasets[0][(0, 0)]["image"].shape == (3, 56, 70)
    assert trainer.datasets[1][(0, 0)]["image"].shape == (3, 42, 56)
    rows = [h for h in trainer.fit().history if h["event"] == "train"]
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) for r in rows)
