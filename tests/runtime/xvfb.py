"""A virtual X display (Xvfb) for window tests, and screenshots of it (``xwd``, parsed here).

:func:`window_problem` says why no window test can run here (None when one can):
OpenCV without a GUI backend (``cv2.getBuildInformation()`` says ``GUI: NONE``, as
opencv-python-headless does), or no ``Xvfb`` / ``xwd`` (Debian: ``apt-get install xvfb
x11-apps``).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np


def opencv_gui() -> str:
    """The GUI backend of the imported OpenCV ('NONE' for headless builds, 'QT5', 'GTK3', ...)."""
    import cv2

    info = cv2.getBuildInformation()
    return info.split("GUI:", 1)[1].split("\n", 1)[0].strip() if "GUI:" in info else "NONE"


def window_problem() -> str | None:
    """Why a window test cannot run here, or None."""
    gui = opencv_gui()
    if gui.upper() in ("NONE", ""):
        return "OpenCV has no GUI backend here (GUI: NONE, a headless build): pip install opencv-python"
    missing = [tool for tool in ("Xvfb", "xwd") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install xvfb x11-apps)"
    return None


@contextmanager
def virtual_display(size: tuple[int, int] = (1600, 1000)) -> Iterator[str]:
    """Start Xvfb on a free display number; yields ':N' (set it as DISPLAY); stops it after."""
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{size[0]}x{size[1]}x24",
                             "-nolisten", "tcp"], pass_fds=(write,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        number = b""
        deadline = time.monotonic() + 20
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            chunk = os.read(read, 16)
            if not chunk:
                break
            number += chunk
        if not number.strip():
            raise RuntimeError("Xvfb did not start")
        yield f":{int(number)}"
    finally:
        os.close(read)
        proc.terminate()
        proc.wait(timeout=10)


def screenshot(display: str) -> np.ndarray:
    """The whole screen of ``display`` as (H, W, 3) BGR uint8 (``xwd -root``, ZPixmap 24/32 bpp)."""
    data = subprocess.run(["xwd", "-root", "-silent", "-display", display], check=True,
                          capture_output=True, timeout=30).stdout
    return parse_xwd(data)


def parse_xwd(data: bytes) -> np.ndarray:
    """An XWD (X Window Dump, version 7) ZPixmap of depth 24 in 24- or 32-bit pixels -> BGR uint8."""
    fields = struct.unpack(">25I", data[:100])
    header_size, version, fmt, depth, width, height = fields[:6]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    red_mask, green_mask, blue_mask, ncolors = fields[14], fields[15], fields[16], fields[19]
    if version != 7 or fmt != 2 or depth != 24 or bits_per_pixel not in (24, 32):
        raise ValueError(f"unsupported XWD image: version {version}, format {fmt}, depth {depth}, {bits_per_pixel} bpp")
    start = header_size + 12 * ncolors
    nbytes = bits_per_pixel // 8
    raw = np.frombuffer(data, np.uint8, count=height * bytes_per_line, offset=start).reshape(height, bytes_per_line)
    raw = raw[:, :width * nbytes].reshape(height, width, nbytes).astype(np.uint32)
    order = range(nbytes) if byte_order == 0 else reversed(range(nbytes))  # 0: least significant byte first
    rows = sum(raw[:, :, i] << (8 * k) for k, i in enumerate(order))

    def channel(mask: int) -> np.ndarray:
        shift = (mask & -mask).bit_length() - 1
        return ((rows & mask) >> shift).astype(np.uint8)

    return np.dstack([channel(blue_mask), channel(green_mask), channel(red_mask)])


def find(screen: np.ndarray, image: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Best place of ``image`` on ``screen``: (mean |difference| per channel there, (x, y))."""
    import cv2

    scores = cv2.matchTemplate(screen, image, cv2.TM_SQDIFF)
    _, _, where, _ = cv2.minMaxLoc(scores)
    x, y = where
    h, w = image.shape[:2]
    diff = np.abs(screen[y:y + h, x:x + w].astype(np.int16) - image.astype(np.int16)).mean()
    return float(diff), (x, y)
