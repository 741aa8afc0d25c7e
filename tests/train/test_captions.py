"""Caption files: 15-line format, per-sample files, default captions, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tr2m_edge.errors import DataError
from tr2m_edge.train.captions import CaptionSource, pick_caption, read_caption_file

LINES = [f"caption number {i}" for i in range(10)] + [f"An image with object list {i}" for i in range(5)]


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fifteen_lines_eval_takes_line_zero_training_a_seeded_random_line(tmp_path: Path) -> None:
    _write(tmp_path / "scene" / "rgb_00001.txt", LINES)
    src = CaptionSource(tmp_path)
    lines = src.lines("scene/rgb_00001", 0)
    assert lines == LINES
    assert pick_caption(lines, None) == "caption number 0"
    picks = [pick_caption(lines, np.random.default_rng(seed)) for seed in range(60)]
    assert set(picks) <= set(LINES) and len(set(picks)) >= 10
    assert picks == [pick_caption(lines, np.random.default_rng(seed)) for seed in range(60)]


def test_caption_named_after_the_image_with_extension_is_found(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "0001.png.txt", ["with extension"])
    assert CaptionSource(tmp_path).lines("a/0001", 0) == ["with extension"]


def test_missing_caption_names_the_file_unless_a_default_is_given(tmp_path: Path) -> None:
    src = CaptionSource(tmp_path)
    expected = str(tmp_path / "kitchen" / "rgb_00009.txt")
    with pytest.raises(DataError, match=r"Caption file not found: .*kitchen/rgb_00009\.txt.*--default-caption") as err:
        src.lines("kitchen/rgb_00009", 3)
    assert expected in str(err.value)
    assert CaptionSource(tmp_path, default="an indoor room").lines("kitchen/rgb_00009", 3) == ["an indoor room"]


def test_one_file_with_a_line_per_sample(tmp_path: Path) -> None:
    f = _write(tmp_path / "zero_shot.txt", ["first scene", "", "second scene"])
    src = CaptionSource(f)
    assert src.lines("anything", 0) == ["first scene"] and src.lines("x", 1) == ["second scene"]
    with pytest.raises(DataError, match=r"has 2 lines but sample 2 .* needs line 3"):
        src.lines("x", 2)
    assert CaptionSource(f, default="fallback").lines("x", 5) == ["fallback"]


def test_empty_file_and_no_source_are_errors(tmp_path: Path) -> None:
    empty = _write(tmp_path / "e.txt", ["", "   "])
    with pytest.raises(DataError, match=r"e\.txt is empty"):
        read_caption_file(empty)
    with pytest.raises(DataError, match="No captions"):
        CaptionSource(None)
