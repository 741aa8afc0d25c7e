"""``tr2m-edge train`` and ``tr2m-edge eval``, in process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tr2m_edge.checkpoint import load_checkpoint
from tr2m_edge.cli import main

from train_trees import folder_tree, rgb_image


def run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    cfg = tmp / "cfg.json"
    assert run(["train", "--write-config", str(cfg), "--set", "input_size=[56, 70]",
                "--set", 'train=[{"name": "synthetic", "count": 8}]',
                "--set", 'val={"name": "synthetic", "split": "val", "count": 3, "seed": 1000}']) == 0
    assert json.loads(cfg.read_text())["input_size"] == [56, 70]
    code = run(["train", "--config", str(cfg), "--out", str(tmp / "run"), "--steps", "3", "--batch-size", "2",
                "--lr", "0.001", "--no-progress", "--set", "val_every=3"])
    assert code == 0
    return tmp / "run" / "best.pt"


def test_train_writes_checkpoints_and_reports(trained_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = trained_ckpt.parent
    assert (run_dir / "last.pt").is_file() and (run_dir / "log.jsonl").is_file()
    ck = load_checkpoint(trained_ckpt)
    assert ck.step == 3 and ck.config.preprocess.input_size == (56, 70) and "abs_rel" in ck.metrics
    assert ck.extra["train_config"]["lr"] == 0.001 and ck.extra["train_config"]["batch_size"] == 2


def test_eval_prints_the_table_and_writes_json(trained_ckpt: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    d = np.full((20, 30), 2.5, np.float32)
    folder_tree(tmp_path / "data", [("a", rgb_image((20, 30), 1), d, "a small wooden tabletop with a mug")])
    out = tmp_path / "m.json"
    capsys.readouterr()
    assert run(["eval", "--ckpt", str(trained_ckpt), "--dataset", "folder", "--root", str(tmp_path / "data"),
                "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "abs_rel" in text and "silog" in text and "folder (test): 1 images" in text and str(out) in text
    data = json.loads(out.read_text())
    assert data["count"] == 1 and set(data["metrics"]) >= {"d1", "abs_rel", "rmse"}
    assert run(["eval", "--ckpt", str(trained_ckpt), "--dataset", "synthetic", "--count", "3",
                "--input-size", "56x70", "--max-depth", "20"]) == 0
    data = json.loads((trained_ckpt.parent / "eval_synthetic_test.json").read_text())
    assert data["depth_range"] == [0.001, 20.0] and data["input_size"] == [56, 70] and data["count"] == 3


def test_eval_errors_are_one_line(trained_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder_tree(tmp_path, [("a", rgb_image((8, 8), 1), np.ones((8, 8), np.float32), "x")])
    (tmp_path / "captions" / "a.txt").unlink()
    capsys.readouterr()
    assert run(["eval", "--ckpt", str(trained_ckpt), "--dataset", "folder", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Caption file not found" in err and str(tmp_path / "captions" / "a.txt") in err
    assert run(["eval", "--ckpt", str(trained_ckpt), "--dataset", "folder", "--root", str(tmp_path),
                "--default-caption", "a room"]) == 0
    assert run(["eval", "--ckpt", str(trained_ckpt), "--dataset", "sun", "--root", str(tmp_path)]) == 2
    assert "Unknown dataset 'sun'" in capsys.readouterr().err
    assert run(["eval", "--ckpt", str(tmp_path / "none.pt"), "--dataset", "synthetic"]) == 2
    assert "Checkpoint not found" in capsys.readouterr().err
    assert run(["eval", "--ckpt", str(trained_ckpt), "--dataset", "synthetic", "--input-size", "50x50"]) == 2
    assert "not a multiple of 14" in capsys.readouterr().err


def test_train_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["train", "--config", str(tmp_path / "missing.json")]) == 2
    assert "Train config not found" in capsys.readouterr().err
    assert run(["train", "--set", "loss.w_si=-1", "--out", str(tmp_path)]) == 2
    assert "Loss weights must be >= 0" in capsys.readouterr().err
