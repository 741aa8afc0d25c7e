"""Changing the caption while running: a line on stdin, or a watched text file.

Both call a ``set_scene(text)`` callback from their own thread (one text-encoder call);
the head stage picks the new bias up from the next frame. Errors (an empty line, a
caption the encoder rejects) are logged and the old scene stays.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Callable, TextIO

from tr2m_edge.errors import Tr2mError

log = logging.getLogger(__name__)
SetScene = Callable[[str], object]


def _apply(set_scene: SetScene, text: str, origin: str) -> None:
    text = text.strip()
    if not text:
        return
    try:
        set_scene(text)
        log.warning("scene set to '%s' (%s)", text, origin)
    except Tr2mError as exc:
        log.error("scene '%s' from %s was not applied: %s", text, origin, exc)


class StdinCaptionReader:
    """Reads captions from a text stream (stdin), one per line, until it closes."""

    def __init__(self, set_scene: SetScene, stream: TextIO | None = None) -> None:
        self.set_scene = set_scene
        self.stream = stream or sys.stdin
        self.thread = threading.Thread(target=self._loop, name="tr2m-caption-stdin", daemon=True)

    def start(self) -> "StdinCaptionReader":
        self.thread.start()
        return self

    def _loop(self) -> None:
        for line in self.stream:
            _apply(self.set_scene, line, "stdin")

    def stop(self) -> None:
        """Daemon thread: it ends with the process or when the stream closes."""


class CaptionFileWatcher:
    """Polls a text file; when its first non-empty line changes, that line becomes the scene."""

    def __init__(self, path: str | Path, set_scene: SetScene, interval: float = 0.2) -> None:
        self.path = Path(path)
        self.set_scene = set_scene
        self.interval = interval
        self._stop = threading.Event()
        self._last = self._read()
        self.thread = threading.Thread(target=self._loop, name="tr2m-caption-file", daemon=True)

    def _read(self) -> str:
        try:
            for line in self.path.read_text(errors="replace").splitlines():
                if line.strip():
                    return line.strip()
        except OSError:
            pass
        return ""

    def start(self) -> "CaptionFileWatcher":
        self.thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            text = self._read()
            if text and text != self._last:
                self._last = text
                _apply(self.set_scene, text, str(self.path))

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=2.0)
