"""A reduced demo end to end (few steps, small images): every output exists and decodes, stage 0 beats a
random Depth Anything after alignment, the held-out scenes are checked, and a second run reuses the stages."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tr2m_edge.errors import ConfigError

SIZE = (70, 98)


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    from tr2m_edge.demo import DemoOptions, run_demo

    opts = DemoOptions(out_dir=tmp_path_factory.mktemp("demo"), steps=3, text_steps=5, scenes=12, val_scenes=3,
                       frames=3, size=SIZE, fp16=False, progress=False, video_scale=2, panel_scale=1)
    return opts, run_demo(opts)


def test_reduced_demo_writes_outputs_that_decode(reduced):
    from tr2m_edge.demo.comparison import METHODS
    from tr2m_edge.demo.pipeline import HELD_OUT_SEED
    from tr2m_edge.synthetic import iter_scenes

    opts, summary = reduced
    out = Path(opts.out_dir)
    assert json.loads((out / "demo.json").read_text())["comparison"] == json.loads(json.dumps(summary["comparison"]))
    held_out = list(iter_scenes(3, size=SIZE, seed=HELD_OUT_SEED + opts.seed))
    cap = cv2.VideoCapture(summary["video"])
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    assert len(frames) == 3 and frames[0].shape[:2] == (2 * SIZE[0], 3 * 2 * SIZE[1] + 2 * 64)
    records = [json.loads(line) for line in (out / "depth" / "frames.jsonl").read_text().splitlines()]
    assert [r["caption"] for r in records] == [f.caption for f in held_out]  # each scene's own caption
    for family, path in summary["panels"].items():
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] > 2 * SIZE[0] and image.shape[1] > 4 * SIZE[1], family
    methods = summary["comparison"]["methods"]
    assert set(METHODS) | {"tr2m_bundle"} == set(methods)
    for name, m in methods.items():
        assert set(m) == {"label", "tabletop", "room", "street", "all"}
        assert np.isfinite(m["all"]["abs_rel"]) and 0 <= m["all"]["d1"] <= 1, name
    # the bundle on ONNX Runtime (run's own output) reproduces the PyTorch head
    assert methods["tr2m_bundle"]["all"]["abs_rel"] == pytest.approx(methods["tr2m"]["all"]["abs_rel"], rel=1e-3)
    assert set(summary["goals"]) >= {"tr2m_abs_rel_at_most_0.20", "wrong_caption_ratio"}


def test_stage0_beats_a_random_depth_anything_after_alignment(reduced):
    _, summary = reduced
    s0 = summary["stage0"]
    assert s0["trained_aligned"]["all"]["abs_rel"] < 0.6 * s0["random_aligned"]["all"]["abs_rel"]
    assert s0["trained_aligned"]["all"]["d1"] > s0["random_aligned"]["all"]["d1"]


def test_second_run_reuses_finished_stages(reduced):
    from tr2m_edge.demo import run_demo

    opts, first = reduced
    again = run_demo(opts)
    cached = [name for name, s in again["stages"].items() if s["cached"]]
    assert set(cached) == {"text tower", "TR2M head (full)", "TR2M head (ablation)", "text-only baseline", "export"}
    assert again["comparison"] == first["comparison"]


def test_held_out_scenes_must_not_be_training_scenes():
    from tr2m_edge.demo.comparison import check_held_out, stream_seeds

    check_held_out(stream_seeds(90_000, 48), {"training": stream_seeds(0, 384)})
    with pytest.raises(ConfigError, match=r"2 held-out scene\(s\) are also training scenes"):
        check_held_out(stream_seeds(7, 2), {"training": stream_seeds(7, 10)})
