"""Stage 0: the scale-and-shift-invariant objective, bit-identical training, the shipped weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from tr2m_edge.demo.stage0 import (STAGE0_DIR, WEIGHTS, Stage0Config, check_stage0, ssi_loss, stage0_record,
                                   stage0_spec, train_stage0)


def test_ssi_loss_ignores_scale_and_shift_of_the_prediction_only():
    gen = torch.Generator().manual_seed(0)
    depth = torch.rand(2, 1, 12, 16, generator=gen) * 9 + 1
    mask = torch.ones_like(depth, dtype=torch.bool)
    exact = 3.0 / depth + 0.5  # an affine function of the disparity 1 / depth
    assert float(ssi_loss(exact, depth, mask)) < 1e-5
    noisy = exact + 0.05 * torch.randn(exact.shape, generator=gen)
    base = float(ssi_loss(noisy, depth, mask))
    assert base > 1e-3
    assert float(ssi_loss(7.0 * noisy - 2.0, depth, mask)) == pytest.approx(base, rel=1e-4)
    assert float(ssi_loss(depth, depth, mask)) > 10 * base  # depth itself is not disparity


def test_training_is_bit_identical_from_its_seed(tmp_path: Path) -> None:
    from tr2m_edge.model.encoders import build_depth_encoder

    cfg = Stage0Config(scenes=8, steps=3, val_scenes=0, size=(70, 98))
    first = train_stage0(cfg, tmp_path / "a")
    second = train_stage0(cfg, tmp_path / "b")
    assert first["sha256"] == second["sha256"]
    assert (tmp_path / "a" / WEIGHTS).read_bytes() == (tmp_path / "b" / WEIGHTS).read_bytes()
    assert train_stage0(Stage0Config(scenes=8, steps=3, val_scenes=0, size=(70, 98), seed=1),
                        tmp_path / "c")["sha256"] != first["sha256"]
    trained = build_depth_encoder(stage0_spec(tmp_path / "a"))  # loads like the demo does: EncoderSpec(source=DIR)
    random = build_depth_encoder(cfg.depth_spec())
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, random.state_dict()[k])]
    assert len(changed) > 10  # the steps trained the backbone, the neck and the head


def test_shipped_weights_are_small_verified_and_made_by_the_default_recipe():
    digest = check_stage0()
    assert digest == hashlib.sha256((STAGE0_DIR / WEIGHTS).read_bytes()).hexdigest()
    assert (STAGE0_DIR / WEIGHTS).stat().st_size < 2 * 2 ** 20
    record = stage0_record()
    assert record["config"] == Stage0Config().to_dict()  # `tr2m-edge demo-stage0` regenerates exactly these
    assert record["val_aligned"]["all"]["abs_rel"] < 0.2
