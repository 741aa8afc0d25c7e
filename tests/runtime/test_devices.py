"""``--device``, the camera's size and rate, GStreamer pipelines, and a missing OpenCV / ONNX Runtime."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from rt_common import run_cli

from tr2m_edge.bundle import open_bundle
from tr2m_edge.errors import BackendError, ConfigError, InputError
from tr2m_edge.runtime.backends import choose_backend, resolve_device
from tr2m_edge.runtime.sources import CameraSource, GStreamerSource, OpenCVSource, make_source, parse_camera_size
from tr2m_edge.system import build_feature, cuda_device_count, opencv_info

CLI = [sys.executable, "-m", "tr2m_edge"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
NO_GPU = cuda_device_count() == 0


def one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    return lines[0]


def test_resolve_device():
    assert resolve_device(None) == 0 and resolve_device("auto") == 0  # GPU 0 if any; the backend choice falls back
    assert resolve_device("cpu") is None and resolve_device(" CPU ") is None
    with pytest.raises(ConfigError, match=r"--device 'gpu1' is not a device: give auto, cpu, a GPU index"):
        resolve_device("gpu1")
    if NO_GPU:
        for text in ("0", "cuda:1", "cuda"):
            with pytest.raises(BackendError, match=rf"--device {text}: no CUDA GPU is visible\. Use --device cpu"):
                resolve_device(text)


def test_device_cpu_picks_the_cpu_and_refuses_gpu_backends(tiny_bundle):
    manifest = open_bundle(tiny_bundle).manifest
    choice = choose_backend("auto", manifest, device_id=None)
    assert (choice.name, choice.reason, choice.device) == ("ort-cpu", "auto: --device cpu", "cpu")
    for backend in ("trt", "ort-trt", "ort-cuda"):
        with pytest.raises(BackendError, match=f"Backend {backend} runs on a GPU, but --device cpu asks for the CPU"):
            choose_backend(backend, manifest, device_id=None)


def test_run_and_bench_take_device(tiny_bundle, capsys):
    code, _, err = run_cli(["run", "-b", tiny_bundle, "--synthetic", "--frames", 2, "--text", "a room",
                            "--device", "cpu"], capsys)
    assert code == 0 and "backend ort-cpu: auto: --device cpu" in err and "done: 2 frames read" in err, err
    if NO_GPU:
        code, _, err = run_cli(["bench", tiny_bundle, "--frames", 1, "--device", "3"], capsys)
        assert code == 2 and err.strip() == "error: --device 3: no CUDA GPU is visible. Use --device cpu (or auto) " \
                                            "to run on the CPU."


def test_camera_size_and_rate_are_checked():
    assert parse_camera_size("1280x720") == (720, 1280) and parse_camera_size("640 X 480") == (480, 640)
    for bad in ("720p", "1280x", "0x720", "1280x720x3"):
        with pytest.raises(InputError, match=rf"--camera-size '{bad}' is not WIDTHxHEIGHT"):
            parse_camera_size(bad)
    with pytest.raises(InputError, match="--camera-fps -5.0 is not a frame rate"):
        CameraSource(0, fps=-5.0)
    with pytest.raises(InputError, match=r"--camera-size only applies to --camera N"):
        make_source(synthetic=True, camera_size=(720, 1280))
    with pytest.raises(InputError, match=r"--camera-fps only applies to --camera N"):
        make_source(video="x.mp4", camera_fps=30.0)
    source = make_source(camera=0, camera_size=(720, 1280), camera_fps=30.0)
    assert (source.size, source.request_fps) == ((720, 1280), 30.0)


def test_a_capture_that_ignores_the_requested_size_is_reported(tmp_path, caplog):
    path = str(tmp_path / "v.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    source = OpenCVSource(path, "Test capture", live=False, size=(720, 1280), request_fps=25.0)  # a file keeps its own
    with caplog.at_level(logging.WARNING):
        frames = list(source)
    source.close()
    assert len(frames) == 3 and frames[0].rgb.shape == (48, 64, 3)
    assert caplog.text.count("delivers 64x48 frames, not the requested 1280x720 (--camera-size)") == 1
    assert "runs at 10.0 FPS, not the requested 25.0 (--camera-fps)" in caplog.text


def test_opencv_build_features_are_read_from_the_build_information():
    info = "  GUI:                           NONE\n  Video I/O:\n    GStreamer:                   YES (1.20.3)\n"
    assert build_feature(info, "GUI") == "NONE" and build_feature(info, "GStreamer") == "YES (1.20.3)"
    assert build_feature(info, "FFMPEG") == ""
    here = opencv_info()
    assert here is not None and here.version == cv2.__version__
    assert here.gstreamer == build_feature(cv2.getBuildInformation(), "GStreamer").startswith("YES")


def test_a_pipeline_without_appsink_is_refused():
    with pytest.raises(InputError, match=r"must end in '! appsink'"):
        GStreamerSource("videotestsrc ! autovideosink")


@pytest.mark.skipif(opencv_info() is None or opencv_info().gstreamer, reason="this OpenCV has GStreamer")
def test_source_without_gstreamer_in_opencv_is_one_line(tiny_bundle):
    proc = subprocess.run([*CLI, "run", "-b", str(tiny_bundle), "--text", "a room", "--source",
                           "videotestsrc ! videoconvert ! video/x-raw,format=BGR ! appsink"],
                          capture_output=True, text=True, timeout=120, env=ENV)
    line = one_line(proc)
    assert line.startswith("error: --source needs an OpenCV built with GStreamer; this one (")
    assert "JetPack's OpenCV" in line and "--camera N" in line


@pytest.mark.skipif(opencv_info() is None or not opencv_info().gstreamer, reason="this OpenCV has no GStreamer")
def test_a_gstreamer_pipeline_is_a_source(tiny_bundle, capsys):
    code, _, err = run_cli(["run", "-b", tiny_bundle, "--text", "a room", "--frames", 3, "--source",
                            "videotestsrc num-buffers=100 ! videoconvert ! video/x-raw,format=BGR ! appsink"], capsys)
    assert code == 0 and "source: GStreamer pipeline" in err and "done: 3 frames read" in err, err


@pytest.mark.parametrize("blocked, args, extra", [
    ("cv2", ["--video", "in.mp4"], "opencv"),
    ("onnxruntime", ["--synthetic", "--frames", "1"], "cpu"),
])
def test_run_without_opencv_or_onnxruntime_says_which_extra(tiny_bundle, tmp_path, blocked, args, extra):
    (tmp_path / "in.mp4").write_bytes(b"never decoded")
    code = (f"import sys; sys.modules[{blocked!r}] = None\nfrom tr2m_edge.cli import main\n"
            f"main(['run', '-b', {str(tiny_bundle)!r}, '--text', 'a room', *{args!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV,
                          cwd=tmp_path)
    line = one_line(proc)
    assert line.startswith("error: tr2m-edge run needs ") and f"pip install 'tr2m-edge[{extra}]'" in line, line
