"""Sinks: 16-bit PNG + npy + JSON lines, playable side-by-side video, headless window, stats."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from tr2m_edge.errors import InputError
from tr2m_edge.runtime import DepthFileSink, DisplaySink, MetricDepth, StatsSink, VideoSink
from tr2m_edge.runtime.sinks import DepthColouriser, display_problem, render_panel


def result(i: int, size=(30, 40)) -> MetricDepth:
    rng = np.random.default_rng(i)
    depth = rng.uniform(0.2, 70.0, size).astype(np.float32)
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    return MetricDepth(depth=depth, index=i, timestamp=1000.0 + i, caption="a room", latency_ms=12.5,
                       stage_ms={"depth": 3.0, "head": 4.0}, rgb=rgb)


def test_depth_files_are_millimetres_metres_and_json_lines(tmp_path):
    sink = DepthFileSink(tmp_path / "d", npy=True)
    results = [result(i) for i in range(3)]
    for r in results:
        sink.write(r)
    sink.close()
    lines = (tmp_path / "d" / "frames.jsonl").read_text().splitlines()
    assert len(lines) == 3
    for r, line in zip(results, lines):
        rec = json.loads(line)
        assert rec["index"] == r.index and rec["png"] == f"{r.index:06d}.png"
        assert rec["min_m"] == pytest.approx(float(r.depth.min()))
        assert rec["median_m"] == pytest.approx(float(np.median(r.depth)))
        assert rec["max_m"] == pytest.approx(float(r.depth.max())) and rec["latency_ms"] == 12.5
        png = cv2.imread(str(tmp_path / "d" / rec["png"]), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16 and png.shape == r.depth.shape
        np.testing.assert_allclose(png / 1000.0, np.minimum(r.depth, 65.535), atol=5e-4 + 1e-6)
        np.testing.assert_array_equal(np.load(tmp_path / "d" / rec["npy"]), r.depth)
    assert not list((tmp_path / "d").glob("*.tmp"))


def test_video_is_complete_and_playable_only_after_close(tmp_path):
    path = tmp_path / "out.mp4"
    sink = VideoSink(path, fps=10)
    for i in range(5):
        sink.write(result(i, size=(31, 40)))  # odd height: padded for the encoder
    assert not path.exists()  # still being written under a temp name
    sink.close()
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    count = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        count += 1
        assert frame.shape[0] == 32 and frame.shape[1] >= 2 * 40  # RGB | depth (| colour bar)
    assert count == 5
    assert not list(tmp_path.glob(".*partial*"))


def test_video_rejects_unknown_extensions(tmp_path):
    with pytest.raises(InputError, match=r"Unsupported video extension '.gif'"):
        VideoSink(tmp_path / "x.gif")


@pytest.mark.skipif(display_problem() is None, reason="this machine can open windows")
def test_show_on_a_headless_machine_says_what_to_do_instead():
    with pytest.raises(InputError, match=r"--show cannot open a window: .*Use --out FILE.mp4 or --save-depth DIR"):
        DisplaySink()


def test_stats_line_has_fps_stages_and_counters():
    lines = []

    class Capture:
        def print(self, line):
            lines.append(line)

    sink = StatsSink(lambda: {"read": 9, "dropped": 2}, interval=1e9, console=Capture())
    for i in range(4):
        sink.write(result(i))
    sink.close()
    assert len(lines) == 1
    assert "FPS | ms: depth 3.0 head 4.0 | latency 12.5 ms | read 9 dropped 2" in lines[0]


def test_panel_has_rgb_depth_and_a_colour_bar():
    r = result(0)
    panel = render_panel(r.rgb, r.depth, DepthColouriser(), caption="x")
    assert panel.shape[0] == 30 and panel.shape[1] == 2 * 40 + 64
    np.testing.assert_array_equal(panel[20:, :40], r.rgb[20:, :, ::-1])  # left: the frame (BGR), below the caption
    near, far = DepthColouriser().colourise(np.array([[1.0, 9.0]]), 1.0, 9.0)[0]
    assert not np.array_equal(near, far)


def test_long_captions_are_shortened_to_fit_the_panel():
    import cv2

    from tr2m_edge.runtime.sinks.render import _fit

    long = "a large marble tabletop with a ball, a box and a book under cool light in a haze of steam"
    short = _fit(long, 300, 0.35)
    assert short.endswith("...") and len(short) < len(long)
    assert cv2.getTextSize(short, cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)[0][0] <= 300
    assert _fit("warehouse aisle", 300, 0.35) == "warehouse aisle"


def test_fixed_range_keeps_one_colour_per_distance_across_frames():
    fixed, follow = DepthColouriser(fixed=(0.0, 10.0)), DepthColouriser()
    near, far = np.full((4, 4), 1.0, np.float32), np.full((4, 4), 9.0, np.float32)
    assert fixed.update(near) == fixed.update(far) == (0.0, 10.0)
    assert follow.update(near) != follow.update(far)
    probe = np.array([[5.0]], np.float32)
    np.testing.assert_array_equal(fixed.colourise(probe, *fixed.update(near)),
                                  fixed.colourise(probe, *fixed.update(far)))
    log = DepthColouriser(fixed=(0.2, 80.0), log=True)
    assert float(log.position(np.array(np.sqrt(0.2 * 80.0)), 0.2, 80.0)) == pytest.approx(0.5)
    assert log.ticks(0.2, 80.0, 5) == pytest.approx([0.2, 0.5, 1, 2, 5, 10, 20, 50])
    with pytest.raises(ValueError, match="min > 0 for log colours"):
        DepthColouriser(fixed=(0.0, 10.0), log=True)


def test_enlarged_panel_with_relative_depth_and_a_labelled_bar():
    r = result(0, size=(60, 80))
    panel = render_panel(r.rgb, r.depth, DepthColouriser(fixed=(0.0, 80.0)), relative=r.depth[::2, ::2], scale=3)
    assert panel.shape == (180, 3 * 3 * 80 + 3 * 64, 3)
    bar = DepthColouriser().colour_bar(180, 0.0, 80.0, width=192)
    unlabelled = DepthColouriser().colour_bar(180, 0.0, 80.0, width=192, label="")
    assert unlabelled[0, :20].max() > 0 and bar[0].max() == 0  # the labelled ramp starts lower ...
    assert (bar[1:16, :] > 200).any()  # ... under the white "depth (m)"
    np.testing.assert_array_equal(bar[-1, :40], unlabelled[-1, :40])  # both end at the far colour


def test_png_unit_is_explicit_and_clipping_is_counted_and_warned_once(tmp_path, caplog):
    far = [result(i) for i in range(3)]  # uniform 0.2-70 m: some pixels beyond 65.535 m
    expected = [int(np.count_nonzero(np.rint(r.depth.astype(np.float64) * 1000) > 65535)) for r in far]
    assert min(expected) > 0
    with caplog.at_level("WARNING", logger="tr2m_edge.runtime.sinks.files"):
        sink = DepthFileSink(tmp_path / "mm", npy=True)
        for r in far:
            sink.write(r)
        sink.close()
    warnings = [rec for rec in caplog.records if "saturates above 65.535 m" in rec.getMessage()]
    assert len(warnings) == 1 and sink.clipped == sum(expected)
    records = [json.loads(line) for line in (tmp_path / "mm" / "frames.jsonl").read_text().splitlines()]
    assert [r["png_clipped"] for r in records] == expected and all(r["png_scale"] == 1000.0 for r in records)
    for r, rec in zip(far, records):
        np.testing.assert_array_equal(np.load(tmp_path / "mm" / rec["npy"]), r.depth)  # metres stay exact


def test_png_scale_stores_far_depth_in_other_units(tmp_path):
    r = result(0)
    sink = DepthFileSink(tmp_path / "cm", png_scale=100.0)
    sink.write(r)
    sink.close()
    rec = json.loads((tmp_path / "cm" / "frames.jsonl").read_text())
    assert rec["png_scale"] == 100.0 and rec["png_clipped"] == 0
    png = cv2.imread(str(tmp_path / "cm" / rec["png"]), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(png / rec["png_scale"], r.depth, atol=5e-3 + 1e-6)  # centimetres up to 655 m
    with pytest.raises(InputError, match="--png-scale must be > 0"):
        DepthFileSink(tmp_path / "bad", png_scale=0)
