"""Frame sources: RGB order, folders and globs, reconnects, clear errors, limits."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from tr2m_edge.errors import InputError
from tr2m_edge.runtime import ArraySource, CameraSource, ImageSource, SyntheticSource, VideoSource, make_source
from tr2m_edge.runtime.sources import OpenCVSource

RED_RGB = (220, 30, 10)


def write_video(path, count: int, size=(48, 64), colour=RED_RGB, fourcc="MJPG"):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (size[1], size[0]))
    for _ in range(count):
        writer.write(np.full((*size, 3), colour[::-1], np.uint8))  # OpenCV writes BGR
    writer.release()
    return path


def test_video_frames_come_out_rgb(tmp_path):
    path = write_video(tmp_path / "red.avi", 4)
    frames = list(VideoSource(path))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    rgb = frames[0].rgb
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.reshape(-1, 3).mean(0) - RED_RGB).max() < 8  # R high, B low: converted from BGR


def test_video_errors(tmp_path):
    with pytest.raises(InputError, match="Video file not found"):
        VideoSource(tmp_path / "none.mp4").open()
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(InputError, match="OpenCV cannot decode the video"):
        VideoSource(tmp_path / "junk.mp4").open()


def test_images_from_folder_and_glob(tmp_path):
    cv2.imwrite(str(tmp_path / "b.png"), np.full((8, 9, 3), (10, 20, 30), np.uint8))  # BGR on disk
    cv2.imwrite(str(tmp_path / "a.png"), np.full((8, 9), 40000, np.uint16))  # 16-bit grey
    (tmp_path / "c.png").write_bytes(b"broken")
    (tmp_path / "notes.txt").write_text("ignored")
    src = ImageSource(tmp_path)
    frames = list(src)
    assert len(frames) == 2 and src.unreadable == 1
    assert frames[0].rgb.dtype == np.uint16 and frames[0].rgb.shape == (8, 9)  # converted later by the executor
    assert tuple(frames[1].rgb[0, 0]) == (30, 20, 10)
    assert len(list(ImageSource(str(tmp_path / "b*.png")))) == 1
    with pytest.raises(InputError, match="No images found at"):
        ImageSource(str(tmp_path / "*.jpg")).open()


def test_missing_camera_fails_fast_with_one_line():
    start = time.monotonic()
    with pytest.raises(InputError) as info:
        CameraSource(7, open_attempts=2).open()
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Camera 7 could not be opened (2 attempts with OpenCV;")
    assert "use --video/--images/--synthetic" in message


def test_live_source_reconnects_with_backoff(tmp_path):
    path = write_video(tmp_path / "loop.avi", 3)
    # A "live" source over a file: at the end of the file the read fails like a dropped
    # camera; reconnecting reopens it and frames keep coming.
    src = OpenCVSource(str(path), "loop", live=True, reconnect_timeout=5.0)
    src.limit = 7
    frames = list(src)
    assert len(frames) == 7 and src.reconnects == 2


def test_live_source_gives_up_after_the_timeout(tmp_path):
    path = write_video(tmp_path / "gone.avi", 1)
    src = OpenCVSource(str(path), "Camera gone", live=True, reconnect_timeout=0.6).open()
    assert src.read() is not None
    path.unlink()
    with pytest.raises(InputError, match=r"Camera gone stopped delivering frames and did not come back within 1 s"):
        src.read()


def test_synthetic_source_has_ground_truth_and_captions():
    frames = list(SyntheticSource(3, (28, 42), seed=5))
    assert len(frames) == 3
    assert frames[0].rgb.shape == (28, 42, 3) and frames[0].depth_gt.shape == (28, 42)
    assert all(f.caption for f in frames)


def test_limit_and_array_source():
    src = ArraySource([np.zeros((2, 2, 3), np.uint8)] * 10)
    src.limit = 4
    assert [f.index for f in src] == [0, 1, 2, 3]


@pytest.mark.parametrize("kwargs, match", [
    ({}, "got none"),
    ({"camera": 0, "video": "x.mp4"}, "got --camera, --video"),
])
def test_exactly_one_source(kwargs, match):
    with pytest.raises(InputError, match=f"Give exactly one source .*{match}"):
        make_source(**kwargs)
