"""``run --show`` for real: a window on a virtual X display (Xvfb), checked on screenshots.

Needs an OpenCV with a GUI backend (``pip install 'tr2m-edge[gui]'``; the headless build
says ``GUI: NONE``) and Xvfb + xwd (``apt-get install xvfb x11-apps``); the key test also
needs xdotool. Skipped with the reason where any is missing (CI installs the headless
OpenCV, so CI skips these; see README "Live view").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from rt_common import CAPTIONS, FRAME_SIZE
from xvfb import find, screenshot, virtual_display, window_problem

from tr2m_edge.runtime.sinks import DepthColouriser
from tr2m_edge.runtime.sinks.display import LiveView, bar_width, fit_frame

PROBLEM = window_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"no window test here: {PROBLEM}")

RANGE = (0.5, 30.0)
WINDOW = (1280, 720)
LABEL_ROWS = 32  # the caption strip over the top of the panel (long captions reach into the bar)


def start_run(bundle: Path, display: str, depth_dir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
    env.update(DISPLAY=display, PYTHONWARNINGS="ignore", QT_LOGGING_RULES="*=false")
    return subprocess.Popen(
        [sys.executable, "-m", "tr2m_edge", "run", "-b", str(bundle), "--synthetic", "--show", "--frames", "100000",
         "--range", f"{RANGE[0]}:{RANGE[1]}", "--window-size", f"{WINDOW[0]}x{WINDOW[1]}", "--save-depth",
         str(depth_dir)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def expected_bar() -> tuple[np.ndarray, tuple[int, int]]:
    """The colour bar the window must show for RANGE (below the caption strip), and the tile size."""
    th, tw = fit_frame(FRAME_SIZE, 2, WINDOW, LiveView(window_size=WINDOW).strip_h)
    bar = DepthColouriser(RANGE).colour_bar(th, *RANGE, width=bar_width(th))
    return bar[LABEL_ROWS:], (th, tw)


def wait_for_panel(proc: subprocess.Popen, display: str, timeout: float = 180.0):
    """Screenshots until the expected bar is on screen: (screen, bar's (x, y) on it)."""
    bar, _ = expected_bar()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run --show ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        screen = screenshot(display)
        diff, where = find(screen, bar)
        if diff < 1.0:
            return screen, where
        time.sleep(1.0)
    raise AssertionError("the window with the depth panel did not appear")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # drains and closes, like Ctrl-C
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def captions(depth_dir: Path) -> list[str]:
    lines = (depth_dir / "frames.jsonl").read_text().splitlines() if (depth_dir / "frames.jsonl").exists() else []
    return [json.loads(line)["caption"] for line in lines if line.startswith('{"index"')]


def keep(screen: np.ndarray, name: str, tmp_path: Path) -> None:
    """Write a screenshot into tmp_path, and into $TR2M_EDGE_SCREENSHOTS when set (to look at)."""
    cv2.imwrite(str(tmp_path / name), screen)
    if os.environ.get("TR2M_EDGE_SCREENSHOTS"):
        shutil.copy(tmp_path / name, Path(os.environ["TR2M_EDGE_SCREENSHOTS"]) / name)


def test_show_opens_a_window_whose_screenshot_holds_the_depth_panel(tiny_bundle, tmp_path):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    with virtual_display() as display:
        proc = start_run(bundle, display, tmp_path / "depth")
        try:
            screen, (x, y) = wait_for_panel(proc, display)
        finally:
            code, err = stop(proc)
    keep(screen, "show_window.png", tmp_path)
    assert code in (0, 130), err
    bar, (th, tw) = expected_bar()
    top = y - LABEL_ROWS  # the panel's top row on screen; the bar starts right of two tiles
    depth_tile = screen[y:top + th, x - tw:x]
    turbo = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO).reshape(256, 3)
    colours = {tuple(c) for c in turbo}
    on_map = np.array([tuple(p) in colours for p in depth_tile.reshape(-1, 3)])
    assert on_map.mean() > 0.99  # the depth panel: every pixel a colour of the depth map
    assert len({tuple(p) for p in depth_tile.reshape(-1, 3)}) > 10  # ... and not one flat colour
    rgb_tile = screen[y:top + th, x - 2 * tw:x - tw]
    assert np.array([tuple(p) in colours for p in rgb_tile.reshape(-1, 3)]).mean() < 0.5  # left: the frame
    help_strip = screen[top + th:top + th + 20, x - 2 * tw:x]
    assert (help_strip > 200).any()  # the key help line under the panel
    assert len(captions(tmp_path / "depth")) > 0


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool not installed (apt-get install xdotool)")
def test_window_keys_type_a_caption_switch_scenes_and_quit(tiny_bundle, tmp_path):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    typed = "a narrow warehouse aisle"
    depth_dir = tmp_path / "depth"
    with virtual_display() as display:
        proc = start_run(bundle, display, depth_dir)
        env = {**os.environ, "DISPLAY": display}

        def xdo(*args: str) -> str:
            return subprocess.run(["xdotool", *args], env=env, check=True, capture_output=True, text=True,
                                  timeout=60).stdout

        def wait_caption(text: str) -> None:
            deadline = time.monotonic() + 60
            while text not in captions(depth_dir) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert text in captions(depth_dir), captions(depth_dir)[-5:]

        def help_strip() -> np.ndarray:
            return screenshot(display)[top + th:top + th + 20, x - 2 * tw:x].astype(int)

        try:
            _, (x, y) = wait_for_panel(proc, display)
            _, (th, tw) = expected_bar()
            top = y - LABEL_ROWS
            window = xdo("search", "--name", "^tr2m-edge$").split()[0]
            xdo("windowfocus", "--sync", window)
            time.sleep(1.0)  # let the toolkit take the focus before the first key
            keys_line = help_strip()
            for _ in range(3):  # t: the help line turns into the caption being typed
                xdo("key", "t")
                deadline = time.monotonic() + 5
                while np.abs(help_strip() - keys_line).max() < 100 and time.monotonic() < deadline:
                    time.sleep(0.2)
                if np.abs(help_strip() - keys_line).max() >= 100:
                    break
            else:
                raise AssertionError("t did not start typing: the help line stayed")
            xdo("type", "--delay", "150", typed)  # human speed: the window polls keys between frames
            keep(screenshot(display), "typing.png", tmp_path)  # the help line shows the caption being typed
            xdo("key", "Return")
            wait_caption(typed)  # embedded by the text encoder while the stream ran
            xdo("key", "n")
            wait_caption(CAPTIONS[0])  # the next (first) cached scene of the bundle
            xdo("key", "q")
            code, err = proc.wait(timeout=60), proc.stderr.read()
        finally:
            stop(proc)
    assert code == 0 and "done:" in err, err  # q stops like the end of the stream (drained)
    seen = captions(depth_dir)
    assert seen.index(typed) < len(seen) - 1 - seen[::-1].index(CAPTIONS[0])  # typed first, then n
