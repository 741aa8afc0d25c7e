"""Class 3: config and manifest fields of the wrong type or range are one-line errors naming the field."""

from __future__ import annotations

import json

import pytest

TRAIN_CASES = [
    ({"batch_size": "eight"}, r"batch_size = 'eight': expected a whole number"),
    ({"steps": 1.5}, r"steps = 1\.5: expected a whole number"),
    ({"input_size": 140}, r"input_size = 140: expected a list of 2 values"),
    ({"lr": float("nan")}, r"lr = nan: expected a finite number"),
    ({"lr": "fast"}, r"lr = 'fast': expected a number"),
    ({"epochs": True}, r"epochs = True: expected a whole number"),
    ({"val_limit": -1}, r"val_limit must be >= 0"),
]


@pytest.mark.parametrize("change, message", TRAIN_CASES, ids=[next(iter(c)) for c, _ in TRAIN_CASES])
def test_train_config_fields(tmp_path, cli, assert_one_line, change, message):
    from tr2m_edge.train.config import TrainConfig

    data = {**TrainConfig().to_dict(), **change}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(data))
    code, _, err = cli("train", "--config", path, "--write-config", tmp_path / "out.json")
    assert_one_line(code, err, message)
    assert not (tmp_path / "out.json").exists()


def test_train_config_not_utf8(tmp_path, cli, assert_one_line):
    path = tmp_path / "cfg.json"
    path.write_bytes(b'{"lr": "\xff\xfe"}')
    code, _, err = cli("train", "--config", path)
    assert_one_line(code, err, r"is not UTF-8 text")


MANIFEST_CASES = [
    ("format_version", "one", r"format_version 'one'; expected a whole number"),
    ("frame_size", 5, r"frame_size = 5: expected"),
    ("frame_size", [1, 640], r"frame_size is invalid: Frame size must be"),
    ("dynamic", "yes", r"dynamic = 'yes': expected true or false"),
    ("files", {"a": 1}, r"files = \{'a': 1\}: expected a list"),
]


@pytest.mark.parametrize("key, value, message", MANIFEST_CASES, ids=[f"{k}={v}" for k, v, _ in MANIFEST_CASES])
def test_manifest_fields(bundle_copy, cli, assert_one_line, key, value, message):
    from tr2m_edge.bundle import manifest_digest

    path = bundle_copy / "manifest.json"
    data = json.loads(path.read_text())
    data[key] = value
    data["digest"] = manifest_digest(data)  # a consistent digest: the field check itself must refuse it
    path.write_text(json.dumps(data))
    code, _, err = cli("info", bundle_copy)
    assert_one_line(code, err, message)
