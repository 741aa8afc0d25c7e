"""The demo's head training: the edge-style tiny model on stage 0 gives a loadable best.pt, for both loss variants."""

from __future__ import annotations

from pathlib import Path

import pytest

from tr2m_edge.checkpoint import load_checkpoint
from tr2m_edge.errors import ConfigError


def test_demo_model_is_the_tiny_preset_edge_style_on_stage0():
    from tr2m_edge.config import get_preset
    from tr2m_edge.demo import STAGE0_DIR, demo_model_config

    cfg, tiny = demo_model_config(), get_preset("tiny")
    assert cfg.shared_backbone and cfg.head.in_channels == tiny.depth.hidden_size
    assert Path(cfg.depth.source) == STAGE0_DIR and cfg.depth.hidden_size == tiny.depth.hidden_size
    assert cfg.text == tiny.text and cfg.preprocess == tiny.preprocess and cfg.max_depth == tiny.max_depth


def test_demo_train_returns_a_loadable_best_checkpoint(tmp_path: Path) -> None:
    from tr2m_edge.demo import demo_config, demo_train

    cfg = demo_config(tmp_path, steps=300)
    assert cfg.model_config().shared_backbone and cfg.steps == 300 and cfg.val is not None and not cfg.augment
    assert cfg.loss.w_tpsi > 0 and cfg.loss.w_soc > 0
    ablation = demo_config(tmp_path, steps=300, variant="ablation")
    assert ablation.loss.w_tpsi == ablation.loss.w_soc == 0 and ablation.loss.w_si == cfg.loss.w_si
    with pytest.raises(ConfigError, match="Unknown demo loss variant 'none'"):
        demo_config(tmp_path, variant="none")
    best = demo_train(tmp_path / "demo", steps=2, progress=False, scenes=8, val_scenes=2, input_size=(70, 98))
    assert best == tmp_path / "demo" / "best.pt" and load_checkpoint(best).step == 2
    assert load_checkpoint(best).config.shared_backbone
