"""The edge accuracy study (tr2m_edge/train/study.py): stride choice, models, table; end to end (slow)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tr2m_edge.config import get_preset
from tr2m_edge.errors import ConfigError
from tr2m_edge.train.study import StudyConfig, StudyRow, choose_stride, edge_config, released_config, run_study


def _rows(values: dict[int, float]) -> dict[int, StudyRow]:
    return {s: StudyRow(f"edge s{s}", "", s, v, 0.9) for s, v in values.items()}


def test_the_cheapest_stride_within_five_percent_is_chosen():
    assert choose_stride(_rows({1: 0.200, 2: 0.205, 4: 0.209, 8: 0.211})) == 4  # 8 is 5.5 % worse
    assert choose_stride(_rows({1: 0.200, 2: 0.300, 4: 0.190, 8: 0.2099})) == 8
    assert choose_stride(_rows({1: 0.200, 2: 0.300, 4: 0.300, 8: 0.300})) == 1


def test_study_models_share_encoders_and_widths():
    released, edge = released_config(), edge_config(4)
    tiny = get_preset("tiny")
    assert released.image == tiny.image and released.head == tiny.head  # the released head's shape, scaled
    assert edge.image is None and edge.depth == tiny.depth and edge.head.output_stride == 4
    assert edge.head.in_channels == tiny.depth.hidden_size and edge.head.decoder_channels == tiny.head.decoder_channels
    assert released.preprocess.input_size == edge.preprocess.input_size == StudyConfig.input_size
    with pytest.raises(ConfigError, match="must include 1"):
        StudyConfig(strides=(2, 8))


def test_given_frozen_encoders_replace_the_random_ones_in_every_study_model(tmp_path):
    from tr2m_edge.demo.stage0 import stage0_spec

    tiny = get_preset("tiny")
    depth = stage0_spec()  # the shipped stage-0 weights: the edge head's width is read from their config
    text = dataclasses.replace(tiny.text, family="hf_clip", source=str(tmp_path / "text"))
    released, edge = released_config((140, 182), depth, text), edge_config(8, (140, 182), depth, text)
    for cfg in (released, edge):
        assert cfg.depth == depth and cfg.text == text and cfg.preprocess.input_size == (140, 182)
    assert released.image == tiny.image and edge.image is None and edge.head.output_stride == 8
    assert edge.head.in_channels == depth.hidden_size


@pytest.mark.slow
def test_the_study_end_to_end_on_a_tiny_budget(tmp_path):
    cfg = StudyConfig(out_dir=str(tmp_path / "study"), steps=2, train_scenes=4, val_scenes=2, test_scenes=3,
                      distill_frames=4, distill_holdout=2, strides=(1, 8), progress=False)
    report = run_study(cfg)
    names = [r["name"] for r in report["rows"]]
    assert names == ["edge s1", "edge s8", "released", "edge student", "edge student", "its teacher"]
    assert report["chosen_stride"] in (1, 8)
    saved = json.loads((tmp_path / "study" / "edge_study.json").read_text())
    assert saved["rows"] == report["rows"]
    table = (tmp_path / "study" / "edge_study.md").read_text()
    assert "| model | output stride | AbsRel | delta1 |" in table and "random frozen encoders" in table


def test_distill_takes_the_student_decoder_stride():
    from tr2m_edge.train.distill import DistillConfig, student_config

    tiny = get_preset("tiny")
    assert student_config(tiny, "edge").head.output_stride == get_preset("edge").head.output_stride
    assert student_config(tiny, "edge", output_stride=2).head.output_stride == 2
    with pytest.raises(ConfigError, match="--output-stride must be one of 1, 2, 4, 8; got 3"):
        DistillConfig(teacher="t.pt", frames="f", out_dir="o", text="a room", output_stride=3)
