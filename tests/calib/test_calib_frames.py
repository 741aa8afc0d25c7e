"""Calibration / held-out frame sampling: seeded, disjoint (asserted), unreadable files counted."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tr2m_edge.calib.frames import FrameSets, check_disjoint, sample_frames
from tr2m_edge.errors import CalibrationError, ConfigError, InputError

SIZE = (28, 42)


def write_images(folder, count, seed=0, size=SIZE):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        assert cv2.imwrite(str(sub / f"img{i:02d}.png"), img)
    return folder


def assert_disjoint(sets):
    assert not set(sets.calibration_ids) & set(sets.held_out_ids)
    cal = {f.tobytes() for f in sets.calibration}
    assert not any(f.tobytes() in cal for f in sets.held_out)


def test_synthetic_frames_are_seeded_and_disjoint():
    a = sample_frames(synthetic=True, num=3, holdout=2, seed=5, frame_size=SIZE)
    b = sample_frames(synthetic=True, num=3, holdout=2, seed=5, frame_size=SIZE)
    c = sample_frames(synthetic=True, num=3, holdout=2, seed=6, frame_size=SIZE)
    assert (len(a.calibration), len(a.held_out)) == (3, 2)
    assert a.calibration_ids == ["scene 0", "scene 1", "scene 2"] and a.held_out_ids == ["scene 3", "scene 4"]
    assert all(f.shape == (*SIZE, 3) and f.dtype == np.uint8 for f in a.calibration + a.held_out)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.calibration, b.calibration))
    assert any(x.tobytes() != y.tobytes() for x, y in zip(a.calibration, c.calibration))
    assert all(a.calibration_captions) and all(a.held_out_captions)  # synthetic scenes carry their own captions
    assert_disjoint(a)


def test_image_folder_sample_skips_unreadable_files_and_conforms_sizes(tmp_path):
    folder = write_images(tmp_path / "imgs", 9)
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "a" / "empty.jpg").write_bytes(b"")
    big = np.full((56, 84, 3), 7, np.uint8)
    cv2.imwrite(str(folder / "big.png"), big)  # another size: resized to the bundle's frame size
    sets = sample_frames(images=folder, num=6, holdout=3, seed=1, frame_size=SIZE)
    assert sets.available == 12
    assert len(sets.calibration) + len(sets.held_out) == 9
    assert all(f.shape == (*SIZE, 3) for f in sets.calibration + sets.held_out)
    assert_disjoint(sets)
    every = sample_frames(images=folder, num=20, holdout=4, seed=1, frame_size=SIZE)  # fewer usable than asked
    assert every.unreadable == 2 and len(every.calibration) + len(every.held_out) == 10
    assert len(every.held_out) == 2  # 10 usable frames split in the asked 20:4 proportion
    assert_disjoint(every)
    other = sample_frames(images=folder, num=6, holdout=3, seed=2, frame_size=SIZE)
    assert other.calibration_ids != sets.calibration_ids


def test_duplicate_images_never_end_up_on_both_sides(tmp_path):
    folder = tmp_path / "dups"
    folder.mkdir()
    img = np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    for i in range(6):
        cv2.imwrite(str(folder / f"same{i}.png"), img)
    cv2.imwrite(str(folder / "other.png"), 255 - img)
    sets = sample_frames(images=folder, num=4, holdout=2, seed=0, frame_size=SIZE)
    assert sets.duplicates == 5 and len(sets.calibration) == 1 and len(sets.held_out) == 1
    assert_disjoint(sets)


def test_check_disjoint_refuses_an_overlap():
    frame = np.zeros((*SIZE, 3), np.uint8)
    by_pixels = FrameSets("x", 0, calibration=[frame], held_out=[frame.copy()], calibration_ids=["a"], held_out_ids=["b"])
    with pytest.raises(CalibrationError, match="Held-out frames overlap the calibration frames"):
        check_disjoint(by_pixels)
    by_name = FrameSets("x", 0, calibration=[frame], held_out=[frame + 1], calibration_ids=["a"], held_out_ids=["a"])
    with pytest.raises(CalibrationError, match=r"\['a'\]"):
        check_disjoint(by_name)


def test_video_frames_are_a_seeded_disjoint_sample(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (SIZE[1], SIZE[0]))
    for i in range(20):
        writer.write(np.full((*SIZE, 3), i * 12, np.uint8))
    writer.release()
    a = sample_frames(video=path, num=5, holdout=3, seed=0, frame_size=SIZE)
    b = sample_frames(video=path, num=5, holdout=3, seed=0, frame_size=SIZE)
    assert a.available == 20 and (len(a.calibration), len(a.held_out)) == (5, 3)
    assert a.calibration_ids == b.calibration_ids and a.held_out_ids == b.held_out_ids
    assert_disjoint(a)


def test_bad_sources_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="No images in .*empty"):
        sample_frames(images=tmp_path / "empty")
    with pytest.raises(InputError, match="Image folder not found"):
        sample_frames(images=tmp_path / "missing")
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(3):
        (junk / f"x{i}.jpg").write_bytes(b"garbage")
    with pytest.raises(InputError, match="None of the 3 images .* could be read \\(3 unreadable\\)"):
        sample_frames(images=junk)
    one = write_images(tmp_path / "one", 1)
    with pytest.raises(InputError, match="at least 2"):
        sample_frames(images=one, frame_size=SIZE)
    with pytest.raises(InputError, match="exactly one frame source"):
        sample_frames(images=one, synthetic=True)
    with pytest.raises(InputError, match="got none"):
        sample_frames()
    with pytest.raises(ConfigError, match="--num and --holdout must be >= 1"):
        sample_frames(synthetic=True, holdout=0)
    with pytest.raises(InputError, match="Video file not found"):
        sample_frames(video=tmp_path / "none.mp4")
