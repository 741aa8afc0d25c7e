"""The train config: JSON round trip, embedded model configs, dotted overrides, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tr2m_edge.config import get_preset
from tr2m_edge.errors import ConfigError
from tr2m_edge.train.config import TrainConfig, load_train_config
from tr2m_edge.train.datasets import DatasetSpec


def test_defaults_round_trip_through_json(tmp_path: Path) -> None:
    cfg = TrainConfig()
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs, cfg.lr_decay) == (1e-5, 1e-2, 8, 20, 0.9)
    p = tmp_path / "cfg.json"
    p.write_text(cfg.to_json())
    assert load_train_config(p) == cfg
    assert cfg.model_config() == get_preset("tiny")


def test_overrides_and_embedded_model(tmp_path: Path) -> None:
    model = get_preset("tiny").to_dict()
    model["max_depth"] = 20.0
    p = tmp_path / "cfg.json"
    p.write_text(json.dumps({"model": model, "train": [{"name": "synthetic", "count": 16}], "val": None}))
    cfg = load_train_config(p, ["loss.w_es=0.02", "train.0.count=24", "input_size=[56, 70]", "out_dir=runs/x",
                                "schedule=cosine"])
    assert cfg.loss.w_es == 0.02 and cfg.train[0].count == 24 and cfg.out_dir == "runs/x"
    assert cfg.schedule == "cosine" and cfg.val is None
    mc = cfg.model_config()
    assert mc.max_depth == 20.0 and mc.preprocess.input_size == (56, 70)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("bogus=1", r"Unknown train config field\(s\): bogus. Known: amp, augment"),
        ("loss.w_x=1", r"Unknown loss field\(s\): w_x"),
        ("train.3.count=1", r"'3' is not an index of a list of 1"),
        ("schedule=step", "Unknown schedule 'step'. Available: exp_epoch, cosine"),
        ("cache_encoders=on", "cache_encoders=on needs augment=false"),
        ("val_metric=acc", "Unknown val_metric 'acc'"),
        ("input_size=[50, 70]", r"not a multiple of 14"),
        ("model=huge", "Unknown preset 'huge'. Available: paper, edge, tiny"),
        ("batch_size", "must look like key=value"),
    ],
)
def test_bad_values_are_named(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_train_config(None, [override])


def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Train config not found: .*nope.json. Write one with"):
        load_train_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_train_config(bad)
    with pytest.raises(ConfigError, match=r"Unknown dataset field\(s\): path"):
        TrainConfig.from_dict({"train": [{"name": "nyu", "path": "/x"}]})
    with pytest.raises(ConfigError, match="at least one dataset"):
        TrainConfig(train=())
    assert TrainConfig(train=[DatasetSpec("synthetic", count=4)]).train == (DatasetSpec("synthetic", count=4),)


def test_default_caption_fills_only_datasets_without_one() -> None:
    from tr2m_edge.train.config import with_default_caption

    cfg = TrainConfig(train=(DatasetSpec("synthetic", count=4), DatasetSpec("synthetic", count=4,
                                                                           default_caption="own")))
    out = with_default_caption(cfg, "an indoor scene")
    assert [s.default_caption for s in out.train] == ["an indoor scene", "own"]
    assert out.val.default_caption == "an indoor scene"
    assert load_train_config(None, ["train.0.input_size=[42, 56]"]).train[0].input_size == (42, 56)
