"""Frame sources: camera, RTSP stream, video file, image folder, synthetic scenes, arrays.

Every source delivers RGB frames (OpenCV's BGR is converted on read) as :class:`Frame`
objects and returns None at the end of the stream. Live sources (camera, RTSP) reconnect
with exponential backoff when the device drops, and fail with one clear line when they
never open.
"""

from __future__ import annotations

import abc
import glob
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from tr2m_edge.config import parse_width_height
from tr2m_edge.errors import InputError
from tr2m_edge.runtime.frames import Frame

log = logging.getLogger(__name__)
MAX_CAMERA_INDEX = 255  # checked before OpenCV sees it (a negative index crashes some OpenCV builds)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _cv2() -> Any:
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our errors say it in one line
    return cv2


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV channel order (BGR / BGRA) -> RGB / RGBA; grey frames pass unchanged."""
    if image.ndim == 3 and image.shape[2] == 3:
        return image[:, :, ::-1].copy()
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, [2, 1, 0, 3]].copy()
    return image


class FrameSource(abc.ABC):
    """A stream of frames. ``read()`` returns the next :class:`Frame`, or None at the end."""

    live = False  # live sources (camera, RTSP) default to latency mode
    has_captions = False  # every frame carries its own caption (Frame.caption)

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.limit: int | None = None  # stop after this many frames (None: until the stream ends)
        self.skipped: list[dict[str, str]] = []  # items the source could not deliver: {"item", "reason"}
        self._stop = threading.Event()

    def open(self) -> "FrameSource":
        return self

    @abc.abstractmethod
    def read_image(self) -> np.ndarray | Frame | None:
        """The next RGB image (or a Frame), None at the end of the stream."""

    def read(self) -> Frame | None:
        if self.limit is not None and self.count >= self.limit:
            return None
        item = self.read_image()
        if item is None:
            return None
        frame = item if isinstance(item, Frame) else Frame(rgb=item, index=self.count)
        frame.index = self.count
        self.count += 1
        return frame

    def skip(self, item: str, reason: str) -> None:
        """Record an item (a file) the source skipped, with why; warned about once per run."""
        if not self.skipped:
            log.warning("Skipping %s: it %s (unreadable inputs are counted and listed in frames.jsonl)", item, reason)
        else:
            log.info("Skipping %s: it %s", item, reason)
        self.skipped.append({"item": str(item), "reason": reason})

    def request_stop(self) -> None:
        """Wake up any reconnect wait; the next read may return None."""
        self._stop.set()

    def close(self) -> None:
        """Release the device or file."""

    @property
    def fps(self) -> float | None:
        return None

    def __enter__(self) -> "FrameSource":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame


class OpenCVSource(FrameSource):
    """``cv2.VideoCapture`` over a camera index, a URL or a file."""

    def __init__(self, target: int | str, name: str, *, live: bool, open_attempts: int = 3,
                 reconnect_timeout: float = 30.0, size: tuple[int, int] | None = None,
                 request_fps: float | None = None, api: str | None = None) -> None:
        super().__init__(name)
        self.target = target
        self.live = live
        self.open_attempts = max(1, open_attempts)
        self.reconnect_timeout = reconnect_timeout
        self.size = size  # requested (H, W) for cameras
        self.request_fps = request_fps  # requested frame rate for cameras
        self.api = api  # OpenCV capture backend, e.g. "CAP_GSTREAMER" (None: OpenCV's choice)
        self.cap: Any = None
        self.reconnects = 0
        self._checked_mode = False

    def _try_open(self) -> bool:
        cv2 = _cv2()
        cap = cv2.VideoCapture(self.target, getattr(cv2, self.api)) if self.api else cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            return False
        if self.size is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[1])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[0])
        if self.request_fps:
            cap.set(cv2.CAP_PROP_FPS, float(self.request_fps))
        self.cap = cap
        return True

    def _check_mode(self, image: np.ndarray) -> None:
        """Warn once when a camera delivers another size or rate than requested (it picks its nearest mode)."""
        self._checked_mode = True
        got = (int(image.shape[0]), int(image.shape[1]))
        if self.size is not None and got != tuple(self.size):
            log.warning("%s delivers %dx%d frames, not the requested %dx%d (--camera-size): the camera picked its "
                        "nearest mode (v4l2-ctl --list-formats-ext lists them)", self.name, got[1], got[0],
                        self.size[1], self.size[0])
        rate = self.fps
        if self.request_fps and rate and abs(rate - self.request_fps) > 0.5:
            log.warning("%s runs at %.1f FPS, not the requested %.1f (--camera-fps)", self.name, rate, self.request_fps)

    def open_error(self) -> InputError:
        return InputError(f"{self.name} could not be opened with OpenCV.")

    def open(self) -> "OpenCVSource":
        if self.cap is not None:
            return self
        delay = 0.2
        for attempt in range(self.open_attempts):
            if self._try_open():
                return self
            if attempt + 1 < self.open_attempts and not self._stop.wait(delay):
                delay *= 2
        raise self.open_error()

    def read_image(self) -> np.ndarray | None:
        if self.cap is None:
            self.open()
        ok, image = self.cap.read()
        if ok and image is not None:
            if not self._checked_mode and (self.size is not None or self.request_fps):
                self._check_mode(image)
            return bgr_to_rgb(image)
        if not self.live:
            return None
        return self._reconnect()

    def _reconnect(self) -> np.ndarray | None:
        """Reopen a dropped live source with exponential backoff (0.25 s .. 4 s)."""
        log.warning("%s dropped; reconnecting (up to %.0f s)", self.name, self.reconnect_timeout)
        self.cap.release()
        self.cap = None
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.25
        while time.monotonic() < deadline:
            if self._stop.wait(delay):
                return None
            if self._try_open():
                ok, image = self.cap.read()
                if ok and image is not None:
                    self.reconnects += 1
                    log.warning("%s reconnected", self.name)
                    return bgr_to_rgb(image)
                self.cap.release()
                self.cap = None
            delay = min(delay * 2, 4.0)
        raise InputError(
            f"{self.name} stopped delivering frames and did not come back within {self.reconnect_timeout:.0f} s."
        )

    @property
    def fps(self) -> float | None:
        if self.cap is None:
            return None
        value = float(self.cap.get(_cv2().CAP_PROP_FPS) or 0.0)
        return value if value > 0 else None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


def parse_camera_size(text: str) -> tuple[int, int]:
    """``--camera-size WxH`` (width first, as cameras list their modes: 1280x720) -> (H, W)."""
    width, height = parse_width_height(text, "--camera-size")
    return height, width


class CameraSource(OpenCVSource):
    """A local camera by index (``/dev/videoN`` on Linux)."""

    def __init__(self, index: int, *, size: tuple[int, int] | None = None, fps: float | None = None,
                 open_attempts: int = 3, reconnect_timeout: float = 30.0) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_CAMERA_INDEX:
            raise InputError(f"Camera index {index!r} is not valid: give a whole number from 0 to {MAX_CAMERA_INDEX} "
                             "(0 is the first camera, /dev/video0 on Linux).")
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise InputError(f"--camera-fps {fps} is not a frame rate: give a positive number, e.g. 30.")
        super().__init__(int(index), f"Camera {index}", live=True, open_attempts=open_attempts,
                         reconnect_timeout=reconnect_timeout, size=size, request_fps=fps)

    def open_error(self) -> InputError:
        found = sorted(glob.glob("/dev/video*"))
        have = f"video devices here: {', '.join(found)}" if found else "this machine has no /dev/video* devices"
        return InputError(
            f"Camera {self.target} could not be opened ({self.open_attempts} attempts with OpenCV; {have}). "
            "Check the index and that no other program holds the camera, or use --video/--images/--synthetic."
        )


class RtspSource(OpenCVSource):
    """A network stream (RTSP/HTTP URL) through OpenCV's FFmpeg backend."""

    def __init__(self, url: str, *, open_attempts: int = 3, reconnect_timeout: float = 30.0) -> None:
        super().__init__(url, f"Stream {url}", live=True, open_attempts=open_attempts,
                         reconnect_timeout=reconnect_timeout)

    def open_error(self) -> InputError:
        return InputError(f"Stream {self.target} could not be opened ({self.open_attempts} attempts). "
                          "Check the URL, credentials and network, e.g. with `ffplay URL`.")


def gstreamer_problem() -> str | None:
    """Why OpenCV cannot read GStreamer pipelines here (None when it can)."""
    from tr2m_edge.system import opencv_info

    info = opencv_info()
    fix = ("On a Jetson use JetPack's OpenCV (a python3 -m venv --system-site-packages venv, without the [opencv] or "
           "[gui] extras, which would hide it); elsewhere an OpenCV built with -DWITH_GSTREAMER=ON")
    if info is None:
        return f"--source needs OpenCV with GStreamer, and OpenCV is not installed. {fix}."
    if not info.gstreamer:
        return (f"--source needs an OpenCV built with GStreamer; this one ({info.version}, {info.file}) has none, like "
                f"every pip opencv wheel. {fix}; or read the camera with --camera N.")
    return None


class GStreamerSource(OpenCVSource):
    """A GStreamer pipeline that ends in ``appsink``, read through OpenCV's GStreamer backend.

    The way to CSI cameras on a Jetson, e.g. ``nvarguscamerasrc ! video/x-raw(memory:NVMM),
    width=1280,height=720,framerate=30/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert
    ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1``. Needs an OpenCV built with
    GStreamer (JetPack's is; pip's wheels are not): :func:`gstreamer_problem` says so in one line.
    """

    def __init__(self, pipeline: str, *, open_attempts: int = 3, reconnect_timeout: float = 30.0) -> None:
        text = " ".join(str(pipeline).split())
        if "appsink" not in text:
            raise InputError(f"--source {text!r} is not a GStreamer pipeline for OpenCV: it must end in '! appsink', "
                             "e.g. 'v4l2src device=/dev/video0 ! videoconvert ! video/x-raw,format=BGR ! appsink'.")
        super().__init__(text, "GStreamer pipeline", live=True, open_attempts=open_attempts,
                         reconnect_timeout=reconnect_timeout, api="CAP_GSTREAMER")

    def open(self) -> "GStreamerSource":
        problem = gstreamer_problem()
        if problem:
            raise InputError(problem)
        super().open()
        return self

    def open_error(self) -> InputError:
        probe = str(self.target).replace("appsink", "fakesink")
        return InputError(f"The GStreamer pipeline could not be opened ({self.open_attempts} attempts). Try it alone: "
                          f"gst-launch-1.0 {probe}")


class VideoSource(OpenCVSource):
    """A video file, read to the end (never drops)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(os.fspath(path), f"Video {path}", live=False, open_attempts=1)

    def open(self) -> "VideoSource":
        if not Path(self.target).is_file():
            raise InputError(f"Video file not found: {self.target}.")
        super().open()
        return self

    def open_error(self) -> InputError:
        return InputError(f"OpenCV cannot decode the video {self.target}; convert it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4).")


class ImageSource(FrameSource):
    """Images from a folder (sorted by name) or a glob pattern; unreadable files are skipped with a warning."""

    def __init__(self, pattern: str | Path) -> None:
        super().__init__(f"Images {pattern}")
        self.pattern = os.fspath(pattern)
        self.files: list[str] = []
        self.unreadable = 0
        self._pos = 0

    def open(self) -> "ImageSource":
        p = Path(self.pattern)
        if p.is_dir():
            files = [str(f) for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS]
        else:
            files = [f for f in glob.glob(self.pattern) if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
        self.files = sorted(files)
        if not self.files:
            raise InputError(
                f"No images found at {self.pattern} (looked for {', '.join(IMAGE_EXTENSIONS)}). "
                "Pass a folder or a glob such as 'frames/*.png'."
            )
        return self

    def read_image(self) -> np.ndarray | None:
        if not self.files:
            self.open()
        while self._pos < len(self.files):
            path = self.files[self._pos]
            self._pos += 1
            image, problem = read_image_file(path)
            if image is None:
                self.unreadable += 1
                self.skip(path, problem)
                continue
            return bgr_to_rgb(image)
        return None


def _truncated(data: bytes, suffix: str) -> bool:
    """True when a JPEG lacks its end-of-image marker or a PNG its IEND chunk (a cut-off file)."""
    tail = data.rstrip(b"\x00")[-16:]
    if suffix in (".jpg", ".jpeg"):
        return not tail.endswith(b"\xff\xd9")
    if suffix == ".png":
        return not tail.endswith(b"IEND\xaeB`\x82")
    return False


def read_image_file(path: str | Path) -> tuple[np.ndarray | None, str]:
    """(OpenCV image, "") for a readable file, or (None, why) for an unreadable, empty or truncated one."""
    cv2 = _cv2()
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if not data:
        return None, "is empty"
    if _truncated(data, Path(path).suffix.lower()):
        return None, "is truncated (no end-of-image marker)"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        return None, "is not an image OpenCV can decode"
    return image, ""


class SyntheticSource(FrameSource):
    """The training issue's procedural scenes as a stream (RGB + ground-truth depth + caption)."""

    has_captions = True

    def __init__(self, count: int | None, size: tuple[int, int], seed: int = 0) -> None:
        super().__init__("Synthetic scenes")
        self.total = count
        self.size = tuple(size)
        self.seed = seed
        self._it: Iterator[Any] | None = None

    def open(self) -> "SyntheticSource":
        try:
            from tr2m_edge.synthetic import iter_scenes
        except ImportError as exc:
            raise InputError(f"Synthetic scenes are unavailable ({exc}); use --video or --images.") from None
        self._it = iter(iter_scenes(self.total, size=self.size, seed=self.seed))
        return self

    def read_image(self) -> Frame | None:
        if self._it is None:
            self.open()
        scene = next(self._it, None)  # type: ignore[arg-type]
        if scene is None:
            return None
        return Frame(rgb=scene.rgb, index=self.count, depth_gt=scene.depth, caption=scene.caption)


class ArraySource(FrameSource):
    """Any iterable of RGB arrays (or Frames): the Python API's way to stream your own frames."""

    def __init__(self, frames: Iterable[np.ndarray | Frame], *, live: bool = False, name: str = "Arrays") -> None:
        super().__init__(name)
        self.live = live
        self._it = iter(frames)

    def read_image(self) -> np.ndarray | Frame | None:
        return next(self._it, None)


class PacedSource(FrameSource):
    """A camera stand-in: hands out ``frames`` at ``fps`` as a live source (latency mode may drop)."""

    live = True

    def __init__(self, frames: list[np.ndarray], fps: float, name: str | None = None) -> None:
        super().__init__(name or f"paced {fps:g} FPS")
        self.frames, self.period, self._next = frames, 1.0 / fps, 0.0

    def read_image(self) -> np.ndarray | None:
        if self.count >= len(self.frames):
            return None
        now = time.perf_counter()
        if self._next > now:
            self._stop.wait(self._next - now)
        self._next = max(now, self._next) + self.period
        return self.frames[self.count]


def make_source(*, camera: int | None = None, video: str | Path | None = None, images: str | None = None,
                rtsp: str | None = None, synthetic: bool = False, synthetic_count: int | None = None,
                synthetic_size: tuple[int, int] = (140, 182), seed: int = 0, gstreamer: str | None = None,
                camera_size: tuple[int, int] | None = None, camera_fps: float | None = None) -> FrameSource:
    """The one source named by the CLI options (exactly one must be given).

    ``synthetic_count`` bounds the synthetic stream (None: endless); ``gstreamer`` is a
    pipeline ending in ``appsink`` (``--source``); ``camera_size`` (H, W) and ``camera_fps``
    are requested from a ``--camera``.
    """
    given = {k: v for k, v in {"--camera": camera, "--video": video, "--images": images, "--rtsp": rtsp,
                               "--source": gstreamer, "--synthetic": True if synthetic else None}.items() if v is not None}
    if len(given) != 1:
        what = ", ".join(given) if given else "none"
        raise InputError("Give exactly one source (--camera, --video, --images, --rtsp, --source or --synthetic); "
                         f"got {what}.")
    if camera is None and (camera_size is not None or camera_fps is not None):
        flag = "--camera-size" if camera_size is not None else "--camera-fps"
        raise InputError(f"{flag} only applies to --camera N (set a GStreamer pipeline's size in its caps).")
    if camera is not None:
        return CameraSource(camera, size=camera_size, fps=camera_fps)
    if gstreamer is not None:
        return GStreamerSource(gstreamer)
    if video is not None:
        return VideoSource(video)
    if images is not None:
        return ImageSource(images)
    if rtsp is not None:
        return RtspSource(rtsp)
    return SyntheticSource(synthetic_count, synthetic_size, seed=seed)
