"""Class 4: sizes and indices beyond what the machine can hold are refused before any allocation."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("args, message", [
    (["--frame-size", "100000x100000"], r"Frame size 100000x100000 is larger than the supported 8192 px"),
    (["--input-size", "14000x14000"], r"Input size 14000x14000 is larger than the supported 4032 px"),
    (["--frame-size", "1x640"], r"Frame size must be \(height, width\) with both >= 2"),
    (["--input-size", "100x100"], r"not a multiple of 14"),
])
def test_export_sizes(tmp_path, cli, assert_one_line, args, message):
    code, _, err = cli("export", "--random-head", "--preset", "tiny", "-o", tmp_path / "b", "-q", *args)
    assert_one_line(code, err, message)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("index", ["-1", "100000"])
def test_camera_index(battery_bundle, cli, assert_one_line, index):
    code, _, err = cli("run", "-b", battery_bundle, "--camera", index, "--text", "a room")
    assert_one_line(code, err, rf"Camera index {index} is not valid")


def test_an_empty_caption_is_refused_not_replaced(battery_bundle, cli, assert_one_line):
    code, _, err = cli("run", "-b", battery_bundle, "--synthetic", "-n", "1", "--text", "")
    assert_one_line(code, err, r"--text is empty; describe the scene")
    code, _, err = cli("run", "-b", battery_bundle, "--synthetic", "-n", "1", "--text", "   ")
    assert_one_line(code, err, r"--text is empty")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    from tr2m_edge.checkpoint import random_head_checkpoint, save_checkpoint
    from tr2m_edge.config import get_preset

    return save_checkpoint(random_head_checkpoint(get_preset("tiny")), tmp_path_factory.mktemp("ck") / "best.pt")


@pytest.mark.parametrize("args, message", [
    (["--limit", "-1"], r"--limit must be at least 1"),
    (["--limit", "0"], r"--limit must be at least 1"),
    (["--min-depth", "10", "--max-depth", "1"], r"must satisfy 0 <= min_depth < max_depth; got min_depth 10, max_depth 1"),
    (["--max-depth", "nan"], r"must satisfy 0 <= min_depth < max_depth"),
])
def test_eval_refuses_nonsense_instead_of_writing_nan(tiny_ckpt, tmp_path, cli, assert_one_line, args, message):
    out = tmp_path / "eval.json"
    code, _, err = cli("eval", "--ckpt", tiny_ckpt, "--dataset", "synthetic", "--count", "2", "-o", out, *args)
    assert_one_line(code, err, message)
    assert not out.exists()


def test_eval_output_is_checked_before_the_model_loads(tiny_ckpt, tmp_path, cli, assert_one_line):
    code, _, err = cli("eval", "--ckpt", tiny_ckpt, "--dataset", "synthetic", "--count", "2", "-o", tmp_path)
    assert_one_line(code, err, r"--output .* is an existing folder")
