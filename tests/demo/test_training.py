"""The demo's training stage: the tiny preset on synthetic scenes gives a loadable best.pt."""

from __future__ import annotations

from pathlib import Path

from tr2m_edge.checkpoint import load_checkpoint


def test_demo_train_returns_a_loadable_best_checkpoint(tmp_path: Path) -> None:
    from tr2m_edge.demo import demo_config, demo_train

    cfg = demo_config(tmp_path, steps=300)
    assert cfg.model == "tiny" and cfg.steps == 300 and cfg.val is not None and not cfg.augment
    best = demo_train(tmp_path / "demo", steps=2, progress=False)
    assert best == tmp_path / "demo" / "best.pt" and load_checkpoint(best).step == 2
