"""The live view without a window: colour range, fitting, keys, typed captions, FPS in videos.

The window itself (``--show`` under Xvfb) is tested in test_window_xvfb.py.
"""

from __future__ import annotations

import re
import shutil

import cv2
import numpy as np
import pytest
from rt_common import CAPTIONS, FRAME_SIZE
from test_cli_runtime import run_cli

from tr2m_edge.errors import InputError
from tr2m_edge.runtime.caption_input import CaptionWorker
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.run import RunOptions, _colouriser
from tr2m_edge.runtime.sinks import DepthColouriser, display_problem
from tr2m_edge.runtime.sinks.display import KEYS_HELP, LiveView, WindowKeys, bar_width, fit_frame
from tr2m_edge.config import parse_width_height
from tr2m_edge.runtime.sinks.overlay import FpsMeter, SettlingColouriser

PROBE_M = 2.5  # metres of a patch that both frames hold


def frame(lo: float, hi: float, size=(120, 160), seed=0, probe=True) -> MetricDepth:
    """A depth ramp lo..hi metres (with a PROBE_M patch at rows 40..60, columns 60..100)."""
    h, w = size
    depth = np.repeat(np.linspace(lo, hi, w, dtype=np.float32)[None], h, axis=0)
    if probe:
        depth[40:60, 60:100] = PROBE_M
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return MetricDepth(depth=depth, rgb=rgb, caption="a room")


def tiles(view: LiveView, result: MetricDepth) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(depth tile, colour bar, tile size) of the view's image for ``result``."""
    image = view.compose(result)
    th, tw = fit_frame(result.depth.shape, 2, view.window_size, view.strip_h)
    return image[:th, tw:2 * tw], image[:th, 2 * tw:], (th, tw)


def probe_colour(depth_tile: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The colours inside the PROBE_M patch (scaled to the tile), one per pixel."""
    th, tw = depth_tile.shape[:2]
    sy, sx = th / size[0], tw / size[1]
    return depth_tile[int(44 * sy):int(56 * sy), int(64 * sx):int(96 * sx)].reshape(-1, 3)


def test_range_fixes_the_colour_bar_and_the_colour_of_each_distance_across_frames():
    near, far = frame(0.6, 3.0, seed=1), frame(4.0, 7.5, seed=2)  # different depth content, one 2.5 m patch
    fixed = _colouriser(RunOptions(depth_range="0.5:8"), (1e-3, 10.0))
    view = LiveView(colouriser=fixed, window_size=(800, 400))
    (d1, bar1, _), (d2, bar2, _) = tiles(view, near), tiles(view, far)
    np.testing.assert_array_equal(bar1, bar2)  # pixel for pixel the same bar
    p1, p2 = probe_colour(d1, near.depth.shape), probe_colour(d2, far.depth.shape)
    assert (p1 == p1[0]).all() and (p2 == p2[0]).all()
    np.testing.assert_array_equal(p1[0], p2[0])  # the same metres, the same colour
    np.testing.assert_array_equal(p1[0], fixed.colourise(np.array([[PROBE_M]], np.float32), 0.5, 8.0)[0, 0])
    ramp = bar1[:, 4]  # the bar's ramp holds that colour, where 2.5 m sits between 0.5 m (top) and 8 m
    rows = np.flatnonzero((ramp == p1[0]).all(axis=1))
    painted = np.flatnonzero((ramp != ramp[:, :1]).any(axis=1))  # coloured rows (the label above is grey)
    assert rows.size and abs(rows.mean() - (painted[0] + (painted[-1] - painted[0]) * 2.0 / 7.5)) <= 2

    follow = LiveView(colouriser=DepthColouriser(smoothing=0.0), window_size=(800, 400))
    (f1, fbar1, _), (f2, fbar2, _) = tiles(follow, near), tiles(follow, far)  # what --range prevents
    assert not np.array_equal(fbar1, fbar2)
    assert not np.array_equal(probe_colour(f1, near.depth.shape)[0], probe_colour(f2, far.depth.shape)[0])


def test_default_range_is_learned_from_the_first_second_then_fixed():
    now = [0.0]
    colours = SettlingColouriser(1.0, clock=lambda: now[0])
    assert colours.update(frame(1.0, 2.0, probe=False).depth) == pytest.approx((1.0, 2.0), abs=0.1)
    now[0] = 0.5
    lo, hi = colours.update(frame(1.5, 6.0, probe=False).depth)  # still settling: widens
    assert lo == pytest.approx(1.0, abs=0.1) and hi == pytest.approx(6.0, abs=0.1) and not colours.settled
    now[0] = 1.0
    settled = colours.update(frame(1.5, 6.0, probe=False).depth)
    assert colours.settled and settled == (lo, hi)
    now[0] = 5.0
    assert colours.update(frame(10.0, 30.0, probe=False).depth) == settled  # later frames do not move it
    view = LiveView(colouriser=colours, window_size=(800, 400))
    np.testing.assert_array_equal(tiles(view, frame(0.6, 3.0))[1], tiles(view, frame(4.0, 7.5))[1])
    auto = _colouriser(RunOptions(), (1e-3, 10.0))
    assert isinstance(auto, SettlingColouriser) and auto.seconds == 1.0
    assert _colouriser(RunOptions(depth_range="bundle"), (1e-3, 10.0)).fixed == (1e-3, 10.0)


def test_the_panel_fits_the_window_and_small_frames_are_enlarged():
    view = LiveView(WindowKeys(on_caption=lambda text: None))
    big = view.compose(frame(1, 5, size=(480, 640)), fps=12.5)
    assert big.shape[1] <= 1280 and big.shape[0] <= 720 and big.shape[1] > 1260  # the camera frame shrinks
    small = view.compose(frame(1, 5, size=FRAME_SIZE))
    assert small.shape[1] > 1260 and small.shape[0] > 4 * FRAME_SIZE[0]  # a 144 px frame grows
    narrow = LiveView(window_size=(640, 480)).compose(frame(1, 5, size=(480, 640)))
    th, tw = fit_frame((480, 640), 2, (640, 480), 22)
    assert narrow.shape[1] <= 640 and 2 * tw + bar_width(th) <= 640
    with pytest.raises(InputError, match="is not WIDTHxHEIGHT"):
        parse_width_height("1280", "--window-size")
    assert parse_width_height("1920x1080", "--window-size") == (1920, 1080)


def test_window_keys_quit_next_scene_and_type_a_caption():
    calls: list[object] = []
    keys = WindowKeys(lambda: calls.append("stop"), lambda: calls.append("next"), calls.append)
    assert keys.help_line() == KEYS_HELP and "t type a caption" in KEYS_HELP
    keys.press(ord("n"))
    keys.press(-1)
    keys.press(ord("t"))
    for ch in "warehouse aislex":
        keys.press(ord(ch))
    keys.press(8)  # Backspace
    keys.press(ord("q"))  # typed, not quit
    keys.press(8)
    assert keys.help_line().startswith("caption: warehouse aisle_")
    keys.press(13)  # Enter
    assert calls == ["next", "warehouse aisle"] and keys.typing is None
    keys.press(ord("t"))
    keys.press(ord("x"))
    keys.press(27)  # Esc cancels typing ...
    keys.press(27)  # ... and then stops
    assert calls == ["next", "warehouse aisle", "stop"]
    assert "t type" not in WindowKeys().help_line()  # no typing offered without a caption callback


def test_a_typed_caption_is_embedded_in_the_background_by_the_text_encoder(tiny_bundle, tmp_path):
    from tr2m_edge.runtime import DepthPipeline

    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")  # new captions may be cached in the bundle
    rgb = np.random.default_rng(0).integers(0, 256, (*FRAME_SIZE, 3), dtype=np.uint8)
    with DepthPipeline.from_bundle(bundle, backend="ort-cpu") as pipe:
        pipe.set_scene(CAPTIONS[0])
        before = pipe.infer(rgb).depth
        worker = CaptionWorker(pipe.set_scene)
        try:
            worker.submit("a narrow warehouse aisle with shelves")
            assert worker.idle(60) and worker.status is None
            assert pipe.caption == "a narrow warehouse aisle with shelves"
            after = pipe.infer(rgb)
            assert after.caption == pipe.caption and np.abs(after.depth - before).max() > 1e-4
        finally:
            worker.stop()

    def refuse(text):
        raise InputError("the text encoder refused it")

    failing = CaptionWorker(refuse)
    failing.submit("anything")
    assert failing.idle(10) and "not applied: the text encoder refused it" in failing.status
    failing.stop()


def test_fps_meter_counts_the_rate_at_the_sink():
    now = [0.0]
    meter = FpsMeter(smoothing=0.5, clock=lambda: now[0])
    assert meter.tick() is None
    now[0] = 0.1
    assert meter.tick() == pytest.approx(10.0)
    now[0] = 0.3
    assert meter.tick() == pytest.approx(0.5 * 10 + 0.5 * 5)


def test_range_flag_fixes_the_video_colour_bar_across_scenes(tiny_bundle, tmp_path, capsys):
    video = tmp_path / "fixed.avi"  # MJPG: every frame coded on its own
    code, _, err = run_cli(["run", "-b", tiny_bundle, "--synthetic", "--frames", 3, "--out", video,
                            "--range", "0.5:30", "--save-depth", tmp_path / "d"], capsys)
    assert code == 0, err
    frames = read_video(video)
    h, w = FRAME_SIZE
    assert len(frames) == 3 and frames[0].shape[:2] == (h, 2 * w + 64)
    depths = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((tmp_path / "d").glob("*.png"))]
    assert np.abs(depths[0].astype(int) - depths[2].astype(int)).mean() > 100  # different depth content (mm)
    first, last = (f[32:].astype(int) for f in (frames[0], frames[2]))  # below the caption strip
    assert np.abs(first - last)[:, w:2 * w].mean() > 5  # the depth tiles differ ...
    assert np.abs(first - last)[:, 2 * w:].mean() < 1.5  # ... the bars do not (JPEG noise aside; exact: above)


def test_out_video_carries_the_fps_and_caption_overlay(tiny_bundle, tmp_path, capsys):
    from tr2m_edge.synthetic import render_scene

    folder = tmp_path / "same"
    folder.mkdir()
    rgb = render_scene(1, size=FRAME_SIZE).rgb
    for i in range(3):  # one image three times: the frames differ only by their overlay
        cv2.imwrite(str(folder / f"{i}.png"), rgb[:, :, ::-1])
    video = tmp_path / "overlay.avi"
    code, _, err = run_cli(["run", "-b", tiny_bundle, "--images", folder, "--text", "x", "--out", video,
                            "--range", "0.5:30"], capsys)
    assert code == 0, err
    first, second, third = (f.astype(int) for f in read_video(video))
    label_w = cv2.getTextSize("x", cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)[0][0] + 12  # frame 0: the caption only
    assert np.abs(second - third)[32:].max() <= 2  # same frame, same depth: the same below the strip
    assert np.abs(first - second)[32:].max() <= 2
    assert np.abs(first - second)[:16, label_w + 8:].max() > 60  # "NN.N FPS  x" reaches further right


@pytest.mark.skipif(display_problem() is None or "no GUI" not in (display_problem() or ""),
                    reason="this OpenCV has a GUI: --show does not refuse")
def test_show_with_a_headless_opencv_names_the_gui_extra_in_one_line(tiny_bundle, capsys):
    code, _, err = run_cli(["run", "-b", tiny_bundle, "--synthetic", "--show"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "pip install 'tr2m-edge[gui]'" in err and re.search(r"--show cannot open a window", err)


def test_bad_window_size_fails_in_one_line(tiny_bundle, capsys):
    code, _, err = run_cli(["run", "-b", tiny_bundle, "--synthetic", "--show", "--window-size", "big"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--window-size 'big' is not WIDTHxHEIGHT" in err


def read_video(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            return frames
        frames.append(image)
