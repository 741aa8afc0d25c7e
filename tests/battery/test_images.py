"""Class 5: unreadable, empty or truncated images are skipped and counted; a run of only broken
images fails."""

from __future__ import annotations

import json

import cv2
import numpy as np


def _folder(tmp_path, good: int, broken: dict[str, bytes]):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(good):
        ok, buf = cv2.imencode(".jpg", rng.integers(0, 256, (112, 144, 3), dtype=np.uint8))
        (folder / f"{i:02d}.jpg").write_bytes(buf.tobytes())
    for name, data in broken.items():
        (folder / name).write_bytes(data)
    return folder


def test_three_broken_of_ten_are_skipped_and_counted(tmp_path, battery_bundle, cli):
    good = (tmp_path / "x.jpg")
    ok, buf = cv2.imencode(".jpg", np.full((112, 144, 3), 128, np.uint8))
    truncated = buf.tobytes()[: len(buf) // 2]
    folder = _folder(tmp_path, 7, {"90_truncated.jpg": truncated, "91_empty.png": b"", "92_text.jpg": b"not an image"})
    out = tmp_path / "depth"
    code, _, err = cli("run", "-b", battery_bundle, "--images", folder, "--text", "a room", "--save-depth", out,
                       "--stats")
    assert code == 0, err
    text = " ".join(err.split())
    assert "7 frames read, 7 written, 3 skipped" in text
    assert "skipped 3" in text  # the --stats line
    records = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    frames = [r for r in records if "index" in r]
    skipped = [r for r in records if "skipped" in r]
    assert len(frames) == 7
    assert sorted(r["skipped"].split("/")[-1] for r in skipped) == ["90_truncated.jpg", "91_empty.png", "92_text.jpg"]
    assert any("truncated" in r["reason"] for r in skipped)
    assert good is not None


def test_a_folder_of_only_broken_images_fails(tmp_path, battery_bundle, cli, assert_one_line):
    folder = _folder(tmp_path, 0, {"a.jpg": b"\xff\xd8\xff", "b.png": b"", "c.jpg": b"junk"})
    code, _, err = cli("run", "-b", battery_bundle, "--images", folder, "--text", "a room")
    assert_one_line(code, err, r"No frame could be used: 3 input\(s\) skipped")
