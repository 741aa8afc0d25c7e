"""Changing the caption while running: a line on stdin, a watched text file, or a caption
typed into the ``--show`` window.

Each calls a ``set_scene(text)`` callback from their own thread (one text-encoder call);
the head stage picks the new bias up from the next frame. Errors (an empty line, a
caption the encoder rejects) are logged and the old scene stays.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
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


class CaptionWorker:
    """Applies captions typed into the window on its own thread, so the window keeps drawing
    while the text encoder runs (the sink thread never waits for it).

    A caption submitted while another is being embedded waits; a newer one replaces it.
    :attr:`status` says what the window should show: the caption being embedded, or why
    the last one was not applied (for ``error_seconds``), else None.
    """

    def __init__(self, set_scene: SetScene, error_seconds: float = 5.0) -> None:
        self.set_scene = set_scene
        self.error_seconds = error_seconds
        self._cond = threading.Condition()
        self._next: str | None = None
        self._busy: str | None = None
        self._error: tuple[str, float] | None = None
        self._stopped = False
        self.applied: list[str] = []  # captions applied so far, in order
        self.thread = threading.Thread(target=self._loop, name="tr2m-caption-window", daemon=True)
        self.thread.start()

    def submit(self, text: str) -> None:
        """Embed ``text`` and make it the scene (from the next frame on), in the background."""
        text = text.strip()
        if not text:
            return
        with self._cond:
            self._next = text
            self._cond.notify()

    @property
    def status(self) -> str | None:
        with self._cond:
            pending = self._busy or self._next
            if pending:
                return f"embedding '{pending}' ..."
            if self._error and time.monotonic() - self._error[1] < self.error_seconds:
                return self._error[0]
        return None

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted caption was handled; False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._busy or self._next:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._next is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                self._busy, self._next = self._next, None
            text = self._busy
            error = None
            try:
                self.set_scene(text)
                log.warning("scene set to '%s' (typed in the window)", text)
                self.applied.append(text)
            except Exception as exc:  # noqa: BLE001 - the worker must outlive a bad caption; the window says why
                log.error("scene '%s' typed in the window was not applied: %s", text, exc)
                error = (f"not applied: {exc}", time.monotonic())
            with self._cond:
                self._busy = None
                self._error = error
                self._cond.notify_all()

    def stop(self) -> None:
        """End the worker (a caption being embedded finishes first)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self.thread.is_alive():
            self.thread.join(timeout=5.0)
