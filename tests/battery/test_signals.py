"""Class 6: SIGTERM drains like SIGINT (exit 143), a rerun after SIGKILL replaces the records,
concurrent runs into the same outputs are refused, killed exports leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import cv2
import pytest

from battery_common import CLI, ENV


def _records(folder):
    path = folder / "frames.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _start(bundle, video, folder, *extra):
    return subprocess.Popen([*CLI, "run", "-b", str(bundle), "--synthetic", "--text", "a room", "--out", str(video),
                             "--save-depth", str(folder), *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _wait_records(proc, folder, count, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and len(_records(folder)) < count:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]


def _video_frames(video):
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened()
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def test_sigterm_drains_and_exits_143(battery_bundle, tmp_path):
    video, folder = tmp_path / "v.mp4", tmp_path / "d"
    proc = _start(battery_bundle, video, folder)
    _wait_records(proc, folder, 5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM, exit status 143" in " ".join(err.split())
    records = _records(folder)
    assert [r["index"] for r in records] == list(range(len(records))) and len(records) >= 5
    assert _video_frames(video) == len(records)  # the video was finalised: playable, every frame in it
    assert not list(tmp_path.glob(".*partial*"))


def test_a_rerun_after_sigkill_replaces_the_records(battery_bundle, tmp_path):
    video, folder = tmp_path / "v.mp4", tmp_path / "d"
    proc = _start(battery_bundle, video, folder)
    _wait_records(proc, folder, 5)
    proc.kill()
    proc.communicate(timeout=30)
    killed = _records(folder)
    assert [r["index"] for r in killed] == list(range(len(killed)))  # every line of the killed run names complete files
    assert list(tmp_path.glob(".v.partial-*.mp4"))  # the killed writer's temp video is left behind ...
    rerun = subprocess.run([*CLI, "run", "-b", str(battery_bundle), "--synthetic", "-n", "6", "--text", "a room",
                            "--out", str(video), "--save-depth", str(folder)], capture_output=True, text=True, env=ENV,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert [r["index"] for r in _records(folder)] == list(range(6))  # replaced, not appended
    assert not list(tmp_path.glob(".v.partial-*.mp4"))  # ... and removed by the next run to the same target
    assert _video_frames(video) == 6


def test_concurrent_runs_into_one_folder_are_refused(battery_bundle, tmp_path):
    folder = tmp_path / "d"
    first = _start(battery_bundle, tmp_path / "a.mp4", folder)
    try:
        _wait_records(first, folder, 2)
        second = subprocess.run([*CLI, "run", "-b", str(battery_bundle), "--synthetic", "-n", "3", "--text", "x",
                                 "--save-depth", str(folder)], capture_output=True, text=True, env=ENV, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"is in use by another run (pid {first.pid})" in " ".join(second.stderr.split())
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    records = _records(folder)
    assert [r["index"] for r in records] == list(range(len(records)))  # the first run's records are intact


def test_a_killed_exports_partial_folder_is_removed_by_the_next_export(tmp_path, cli):
    dead = subprocess.Popen(["true"])
    dead.wait()
    partial = tmp_path / f".b.partial-{dead.pid}-abcdef"
    partial.mkdir()
    (partial / "depth.onnx").write_bytes(b"half")
    alive = tmp_path / f".b.partial-{os.getpid()}-ghijkl"  # a running export's folder is kept
    alive.mkdir()
    code, _, err = cli("export", "--random-head", "--preset", "tiny", "--frame-size", "112x144", "-o", tmp_path / "b",
                       "-q")
    assert code == 0, err
    assert not partial.exists() and alive.exists()
    assert (tmp_path / "b" / "manifest.json").is_file()


def test_a_stopped_calibration_exits_143_or_130_names_the_stop_and_leaves_the_bundle_as_it_was(bundle_copy):
    """Commands that do not drain (calib here) stop at once: typer alone would exit 130 silently for both."""
    pytest.importorskip("onnxruntime.quantization")
    before = sorted(p.name for p in bundle_copy.iterdir())
    manifest = (bundle_copy / "manifest.json").read_bytes()
    for sig, status, word in ((signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")):
        proc = subprocess.Popen([*CLI, "calib", str(bundle_copy), "--synthetic", "-q"], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not list(bundle_copy.glob(".calib-*")):  # the staging folder: calibration has started
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == status, err
        assert word in err.split() and "Traceback" not in err
        assert sorted(p.name for p in bundle_copy.iterdir()) == before  # staging removed, no INT8 file
        assert (bundle_copy / "manifest.json").read_bytes() == manifest
