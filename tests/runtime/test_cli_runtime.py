"""``tr2m-edge run`` and ``tr2m-edge bench`` end to end on the tiny bundle."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from rt_common import FRAME_SIZE

from tr2m_edge.cli import main

CLI = [sys.executable, "-m", "tr2m_edge"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def check_outputs(video: Path, folder: Path, expected: int) -> None:
    """Complete, readable outputs: the video opens with every frame, every PNG decodes, JSON lines parse."""
    records = [json.loads(line) for line in (folder / "frames.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(expected))
    for r in records:
        png = cv2.imread(str(folder / r["png"]), cv2.IMREAD_UNCHANGED)
        assert png is not None and png.dtype == np.uint16 and png.shape == FRAME_SIZE
        depth = np.load(folder / r["npy"])
        assert abs(float(np.median(depth)) - r["median_m"]) < 1e-4
        np.testing.assert_allclose(png / 1000.0, np.minimum(depth, 65.535), atol=5e-4 + 1e-6)  # 16-bit mm saturate
        assert r["min_m"] <= r["median_m"] <= r["max_m"] and r["latency_ms"] > 0
    assert len(list(folder.glob("*.png"))) == expected
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened()
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == expected
    assert not list(folder.glob("*.tmp")) and not list(video.parent.glob(".*partial*"))


def test_run_writes_video_depth_files_and_stats(tiny_bundle, tmp_path, capsys):
    video, folder = tmp_path / "out.mp4", tmp_path / "depth"
    code, _, err = run_cli(["run", "-b", tiny_bundle, "--synthetic", "--frames", 6, "--text", "a room",
                            "--out", video, "--save-depth", folder, "--save-npy", "--stats"], capsys)
    assert code == 0, err
    assert "backend ort-cpu: auto: ONNX Runtime on the CPU; skipped trt (TensorRT is not installed)" in err
    assert re.search(r"FPS \| ms: pre [\d.]+ depth [\d.]+ image [\d.]+ head [\d.]+ post [\d.]+ \| latency", err)
    assert "done: 6 frames read, 6 written" in err and "throughput mode" in err
    check_outputs(video, folder, 6)


def test_run_images_folder_in_serial_mode(tiny_bundle, synthetic_frames, tmp_path, capsys):
    for i, f in enumerate(synthetic_frames[:3]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), f[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "3.png"), synthetic_frames[3][::2, ::2, 0])  # small grey frame: converted
    code, _, err = run_cli(["run", "-b", tiny_bundle, "--images", tmp_path, "--text", "a room", "--mode", "serial",
                            "--save-depth", tmp_path / "d"], capsys)
    assert code == 0, err
    assert "done: 4 frames read, 4 written, 1 converted" in err and "serial mode" in err


@pytest.mark.parametrize("args, message", [
    (["--camera", "7"], r"error: Camera 7 could not be opened \(3 attempts with OpenCV; .*\)\. Check the index"),
    (["--synthetic", "--show"], r"error: --show cannot open a window: .*Use --out FILE\.mp4"),
    (["--synthetic", "--camera", "0"], r"error: Give exactly one source .* got --camera, --synthetic"),
])
def test_bad_sources_and_sinks_fail_in_one_line(tiny_bundle, args, message):
    proc = subprocess.run([*CLI, "run", "-b", str(tiny_bundle), "--text", "a room", *args],
                          capture_output=True, text=True, timeout=120, env=ENV)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0
    assert len(lines) == 1, proc.stderr
    assert re.search(message, lines[0]), lines[0]


def test_missing_bundle_is_one_clear_line(tmp_path, capsys):
    code, _, err = run_cli(["run", "-b", tmp_path / "nope", "--synthetic", "--text", "x"], capsys)
    assert code == 2 and "Bundle folder not found" in err and len(err.strip().splitlines()) == 1


def test_scene_switch_then_sigint_leaves_complete_outputs(tiny_bundle, tmp_path):
    video, folder, scene = tmp_path / "live.mp4", tmp_path / "depth", tmp_path / "scene.txt"
    scene.write_text("a small wooden tabletop with two mugs\n")
    proc = subprocess.Popen(
        [*CLI, "run", "-b", str(tiny_bundle), "--synthetic", "--scene-file", str(scene), "--out", str(video),
         "--save-depth", str(folder), "--save-npy"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    records = folder / "frames.jsonl"

    def captions() -> list[str]:
        lines = records.read_text().splitlines() if records.is_file() else []
        return [json.loads(line)["caption"] for line in lines]

    def wait(predicate) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not predicate():
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1]

    wait(lambda: len(captions()) >= 5)
    scene.write_text("a cobbled street with two vans\n")  # edited while running
    wait(lambda: captions().count("a cobbled street with two vans") >= 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # drained, then the distinct status of an interrupted run (issue 10)
    match = re.search(r"interrupted: drained and closed: (\d+) frames read, (\d+) written", err)
    assert match, err
    read, written = int(match.group(1)), int(match.group(2))
    assert read == written >= 8  # throughput mode: every captured frame was written
    check_outputs(video, folder, written)
    seen = captions()
    switch = seen.index("a cobbled street with two vans")
    assert set(seen[:switch]) == {"a small wooden tabletop with two mugs"}
    assert set(seen[switch:]) == {"a cobbled street with two vans"}  # from the next frames on, for good


def test_run_on_ort_imports_no_torch(tiny_bundle):
    code = (f"import sys\nfrom tr2m_edge.cli import main\ntry:\n    main(['run', '-b', {str(tiny_bundle)!r}, "
            "'--synthetic', '--frames', '2', '--text', 'a room'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_run_and_bench_take_plan(tiny_bundle, tmp_path, capsys):
    code, out, err = run_cli(["run", "-b", tiny_bundle, "--synthetic", "--frames", 3, "--text", "a room",
                              "--plan", "serial"], capsys)
    assert code == 0, err
    assert "3 written" in err and "throughput mode, serial plan)" in err
    report = tmp_path / "bench.json"
    code, out, err = run_cli(["bench", tiny_bundle, "--frames", 3, "--warmup", 0, "--modes", "throughput",
                              "--plan", "device", "--no-reference", "--json", report], capsys)
    assert code == 0, err
    assert [r["plan"] for r in json.loads(report.read_text())["results"]] == ["device"]
    assert re.search(r"plan\s+.\s+device", out), out
    for cmd in (["run", "-b", tiny_bundle, "--synthetic", "--text", "a room"], ["bench", tiny_bundle]):
        code, out, err = run_cli([*cmd, "--plan", "fast"], capsys)
        assert code == 2 and "Traceback" not in err
        assert err.strip() == "error: Unknown executor plan 'fast'. Available: auto, serial, threads, device.", err


def test_bench_reports_latency_throughput_memory_and_drift(tiny_bundle, tmp_path, capsys):
    report = tmp_path / "bench.json"
    code, out, err = run_cli(["bench", tiny_bundle, "--frames", 6, "--warmup", 1, "--json", report], capsys)
    assert code == 0, err
    assert "backend: ort-cpu" in out and "end-to-end" in out and "pipelined / best serial throughput:" in out
    data = json.loads(report.read_text())
    assert [r["mode"] for r in data["results"]] == ["serial", "serial-split", "throughput"]
    assert [r["plan"] for r in data["results"]] == ["serial", "serial", "threads"]  # CPU runners: a thread per stage
    best_serial = max(r["fps"] for r in data["results"][:2])
    assert data["speedup"] == pytest.approx(data["results"][2]["fps"] / best_serial)
    for r in data["results"]:
        assert r["frames"] == 6 and r["fps"] > 0
        assert set(r["stage_ms"]) == {"preprocess", "depth", "image_encoder", "head", "postprocess"}
        assert r["stage_ms"]["head"]["p50"] <= r["stage_ms"]["head"]["p90"] <= r["stage_ms"]["head"]["p99"]
    assert data["memory_mb"]["rss_peak"] > 0
    assert data["drift"]["max_abs"] == 0.0  # fp32 ORT, pipelined, vs the serial fp32 reference: identical


def test_synthetic_scenes_run_with_their_own_captions_unless_text_is_given(tiny_bundle, tmp_path, capsys):
    from tr2m_edge.synthetic import iter_scenes

    own = [s.caption for s in iter_scenes(3, size=FRAME_SIZE, seed=5)]
    assert len(set(own)) == 3
    cached = sorted(p.name for p in (tiny_bundle / "scenes").iterdir())

    def run(folder, *extra):
        code, _, err = run_cli(["run", "-b", tiny_bundle, "--synthetic", "--frames", 3, "--seed", 5,
                                "--save-depth", folder, "--save-npy", *extra], capsys)
        assert code == 0, err
        records = [json.loads(line) for line in (folder / "frames.jsonl").read_text().splitlines()]
        return err, [r["caption"] for r in records], [np.load(folder / r["npy"]) for r in records]

    err, captions, depth = run(tmp_path / "own")
    assert "scene: each frame's own caption" in err and captions == own
    assert sorted(p.name for p in (tiny_bundle / "scenes").iterdir()) == cached  # frame captions are not stored
    _, fixed, depth_fixed = run(tmp_path / "fixed", "--text", own[1])
    assert fixed == [own[1]] * 3
    np.testing.assert_array_equal(depth[1], depth_fixed[1])  # same scene, same caption
    assert np.abs(depth[0] - depth_fixed[0]).max() > 1e-3  # same scene, another caption


def test_fixed_log_colour_range_relative_tile_and_scale_in_the_video(tiny_bundle, tmp_path, capsys):
    video = tmp_path / "big.mp4"
    code, _, err = run_cli(["run", "-b", tiny_bundle, "--synthetic", "--frames", 2, "--out", video,
                            "--depth-range", "0.2,80", "--log-colours", "--relative", "--panel-scale", 2], capsys)
    assert code == 0, err
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    h, w = FRAME_SIZE
    assert ok and frame.shape[:2] == (2 * h, 3 * 2 * w + 2 * 64)  # RGB | relative | metric | bar, twice the size


@pytest.mark.parametrize("extra, message", [
    (["--depth-range", "10,1"], r"--depth-range needs 0 <= MIN < MAX; got 10,1"),
    (["--depth-range", "near,far"], r"--depth-range must look like MIN,MAX in metres"),
    (["--depth-range", "0,10", "--log-colours"], r"--log-colours needs --depth-range with MIN > 0"),
])
def test_bad_colour_ranges_fail_in_one_line(tiny_bundle, tmp_path, capsys, extra, message):
    code, _, err = run_cli(["run", "-b", tiny_bundle, "--synthetic", "--text", "x", "--out", tmp_path / "o.mp4",
                            *extra], capsys)
    assert code == 2 and re.search(message, err) and len(err.strip().splitlines()) == 1, err
