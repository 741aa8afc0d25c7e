import dataclasses
import json

import pytest

from tr2m_edge.config import (
    EncoderSpec, HeadConfig, ModelConfig, PreprocessConfig, check_input_size, get_preset,
    load_config, parse_size, preset_names,
)
from tr2m_edge.errors import ConfigError


@pytest.mark.parametrize("name", ["paper", "edge", "tiny"])
def test_presets_round_trip_through_json(name):
    cfg = get_preset(name)
    again = ModelConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(again.to_json()) == cfg.to_dict()


def test_preset_facts():
    paper, edge = get_preset("paper"), get_preset("edge")
    assert paper.preprocess.input_size == (434, 560)
    assert paper.preprocess.grid == (31, 40)
    assert paper.head.in_channels == 1024 and paper.head.text_dim == 768
    assert edge.shared_backbone and edge.head.in_channels == 384
    assert not paper.shared_backbone
    assert preset_names() == ["paper", "edge", "tiny"]


def test_unknown_preset_lists_alternatives():
    with pytest.raises(ConfigError, match=r"Unknown preset 'huge'\. Available: paper, edge, tiny"):
        get_preset("huge")


@pytest.mark.parametrize("size", [(433, 560), (434, 561), (0, 14), (14,)])
def test_size_must_be_multiple_of_14(size):
    with pytest.raises(ConfigError, match="multiple of 14|must be \\(height, width\\)"):
        check_input_size(size)


def test_bad_size_suggests_a_valid_one():
    with pytest.raises(ConfigError, match="use e.g. 434x560"):
        PreprocessConfig(input_size=(433, 561))
    assert parse_size("434x560") == (434, 560)
    with pytest.raises(ConfigError, match="HEIGHTxWIDTH"):
        parse_size("big")


def test_replace_input_size_validates():
    cfg = get_preset("tiny").replace(input_size=(70, 98))
    assert cfg.preprocess.input_size == (70, 98)
    with pytest.raises(ConfigError, match="multiple of 14"):
        get_preset("tiny").replace(input_size=(70, 99))


def test_unknown_and_missing_fields_are_named():
    d = get_preset("tiny").to_dict()
    d["head"]["wings"] = 2
    with pytest.raises(ConfigError, match="Unknown HeadConfig field\\(s\\): wings"):
        ModelConfig.from_dict(d)
    d = get_preset("tiny").to_dict()
    del d["depth"]
    with pytest.raises(ConfigError, match="missing the field 'depth'"):
        ModelConfig.from_dict(d)


def test_invalid_values():
    with pytest.raises(ConfigError, match="divisible"):
        HeadConfig(in_channels=30, num_heads=4)
    with pytest.raises(ConfigError, match="Unknown encoder family 'vgg'"):
        EncoderSpec("vgg", source="x")
    with pytest.raises(ConfigError, match="num_layers >= 4"):
        EncoderSpec("depth_anything", hidden_size=32, num_layers=3, num_heads=2)
    with pytest.raises(ConfigError, match="0 < min_depth < max_depth"):
        get_preset("tiny").replace(min_depth=5.0, max_depth=1.0)
    tiny = get_preset("tiny")
    with pytest.raises(ConfigError, match="must equal head.text_dim"):
        tiny.replace(text=dataclasses.replace(tiny.text, embed_dim=32))


def test_load_config(tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text(get_preset("edge").to_json())
    assert load_config(p) == get_preset("edge")
    with pytest.raises(ConfigError, match="Config file not found"):
        load_config(tmp_path / "nope.json")
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(p)
