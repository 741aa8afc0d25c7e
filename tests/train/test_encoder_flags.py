"""--depth-model / --image-model / --text-model on import-official, train and eval: recorded in
the checkpoint config, and eval loads the encoders from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tr2m_edge.checkpoint import load_checkpoint, random_head_checkpoint, save_checkpoint
from tr2m_edge.cli import main
from tr2m_edge.config import get_preset
from tr2m_edge.model import build_head


def run(args: list) -> int:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def local(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("flags")
    tiny_model.depth_encoder.model.save_pretrained(root / "depth")
    tiny_model.image_encoder.model.save_pretrained(root / "dino")
    torch.save(tiny_model.text_encoder.model.state_dict(), root / "text.pt")
    return root


def flags(root: Path) -> list:
    return ["--depth-model", root / "depth", "--image-model", root / "dino", "--text-model", root / "text.pt"]


def test_import_official_records_the_encoders(tmp_path, local):
    state = {k: torch.randn_like(v) for k, v in build_head(get_preset("tiny")).state_dict().items()}
    torch.save(state, tmp_path / "w.pth")
    assert run(["import-official", tmp_path / "w.pth", "--preset", "tiny", "-o", tmp_path / "best.pt", *flags(local)]) == 0
    cfg = load_checkpoint(tmp_path / "best.pt").config
    assert (cfg.depth.source, cfg.image.source, cfg.text.pretrained) == (
        str(local / "depth"), str(local / "dino"), str(local / "text.pt"))


def test_train_config_records_the_encoders(tmp_path, local):
    assert run(["train", "--write-config", tmp_path / "cfg.json", *flags(local)]) == 0
    model = json.loads((tmp_path / "cfg.json").read_text())["model"]
    assert model["depth"]["source"] == str(local / "depth") and model["text"]["pretrained"] == str(local / "text.pt")


def test_eval_loads_the_encoders_from_the_flags(tmp_path, local, tiny_model):
    ckpt = save_checkpoint(random_head_checkpoint(get_preset("tiny")), tmp_path / "best.pt")
    common = ["eval", "--ckpt", ckpt, "--dataset", "synthetic", "--count", 2, "--input-size", "model"]
    assert run([*common, "-o", tmp_path / "random.json"]) == 0
    assert run([*common, "-o", tmp_path / "local.json", *flags(local), "--offline"]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text())["metrics"] for n in ("random", "local"))
    # the saved encoders are the tiny preset's own weights (from_pretrained may pick another
    # attention kernel: measured 1e-8 relative apart)
    assert a == pytest.approx(b, rel=1e-6)
    assert run([*common, "--depth-model", tmp_path / "nowhere"]) == 2
