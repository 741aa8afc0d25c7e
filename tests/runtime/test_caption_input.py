"""Changing the caption while running: stdin lines and a watched file."""

from __future__ import annotations

import io
import time

from tr2m_edge.errors import InputError
from tr2m_edge.runtime.caption_input import CaptionFileWatcher, StdinCaptionReader


def wait_for(predicate, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_stdin_lines_become_scenes_and_errors_keep_the_old_one():
    applied = []

    def set_scene(text):
        if text == "bad":
            raise InputError("rejected")
        applied.append(text)

    reader = StdinCaptionReader(set_scene, io.StringIO("warehouse aisle\n\n  bad \nstreet at night\n")).start()
    reader.thread.join(timeout=5)
    assert applied == ["warehouse aisle", "street at night"]


def test_watched_file_applies_each_new_first_line(tmp_path):
    path = tmp_path / "scene.txt"
    path.write_text("kitchen\n")
    applied = []
    watcher = CaptionFileWatcher(path, applied.append, interval=0.02).start()
    try:
        time.sleep(0.1)
        assert applied == []  # the caption at start is the initial scene, not a change
        path.write_text("\n  warehouse aisle  \nignored second line\n")
        assert wait_for(lambda: applied == ["warehouse aisle"])
        path.unlink()  # a vanished file changes nothing
        time.sleep(0.1)
        path.write_text("street\n")
        assert wait_for(lambda: applied == ["warehouse aisle", "street"])
    finally:
        watcher.stop()
    assert not watcher.thread.is_alive()
