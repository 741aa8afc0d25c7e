"""Distillation: a tiny one-ViT student reproduces its tiny teacher on held-out frames."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tr2m_edge.cli import main


@pytest.fixture(scope="module")
def teacher_and_frames(tmp_path_factory):
    from tr2m_edge.checkpoint import random_head_checkpoint, save_checkpoint
    from tr2m_edge.config import get_preset
    from tr2m_edge.synthetic import iter_scenes

    root = tmp_path_factory.mktemp("distill")
    teacher = save_checkpoint(random_head_checkpoint(get_preset("tiny")), root / "teacher.pt")
    frames = root / "frames"
    (frames / "rgb").mkdir(parents=True)
    (frames / "depth").mkdir()
    for i, scene in enumerate(iter_scenes(24, size=(140, 182), seed=7)):
        cv2.imwrite(str(frames / "rgb" / f"{i:03d}.png"), scene.rgb[:, :, ::-1])
        np.save(frames / "depth" / f"{i:03d}.npy", scene.depth)
    return teacher, frames, root


def test_a_tiny_student_reproduces_its_teacher(teacher_and_frames, capsys):
    teacher, frames, root = teacher_and_frames
    out = root / "run"
    with pytest.raises(SystemExit) as info:
        main(["distill", "--teacher", str(teacher), "--images", str(frames), "--text", "a room", "--preset", "tiny",
              "-o", str(out), "--steps", "120", "--holdout", "6", "--lr", "2e-3", "--no-progress", "--device", "cpu"])
    assert info.value.code in (0, None), capsys.readouterr().err
    report = json.loads((out / "distill.json").read_text())
    assert report["frames"] == 24 and report["held_out"] == 6
    held = set((out / "teacher" / "test.txt").read_text().split())
    trained = set((out / "teacher" / "train.txt").read_text().split())
    assert len(held) == 6 and len(trained) == 18 and not held & trained  # held-out frames never trained on
    assert report["student_vs_teacher"]["abs_rel"] <= 0.05, report
    assert {"student_vs_truth", "teacher_vs_truth"} <= set(report)  # the folder had ground truth
    # the student is a one-ViT model on the teacher's relative-depth model
    from tr2m_edge.checkpoint import load_checkpoint

    student, teacher_cfg = load_checkpoint(report["student"]).config, load_checkpoint(teacher).config
    assert student.image is None and student.depth == teacher_cfg.depth and student.text == teacher_cfg.text


def test_distill_needs_captions_and_one_frame_source(teacher_and_frames, capsys):
    teacher, frames, root = teacher_and_frames
    with pytest.raises(SystemExit) as info:
        main(["distill", "--teacher", str(teacher), "--images", str(frames), "-o", str(root / "x")])
    assert info.value.code == 2 and "Give the frames' captions" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["distill", "--teacher", str(teacher), "--text", "a", "-o", str(root / "x")])
    assert info.value.code == 2 and "exactly one of --images DIR or --video FILE" in capsys.readouterr().err
