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
