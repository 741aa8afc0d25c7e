"""Captions never go into a bundle at run time: the user cache (XDG) or memory, and read-only bundles run."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from rt_common import CAPTIONS, run_cli

from tr2m_edge.caption_cache import CaptionCache, user_scenes_dir
from tr2m_edge.bundle import open_bundle
from tr2m_edge.runtime import DepthPipeline
from tr2m_edge.runtime.scene_bias import caption_biases, caption_cache

NEW = "a brand new caption nobody cached"


@pytest.fixture()
def xdg(tmp_path, monkeypatch):
    folder = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (folders too) -> sha256 of its bytes ('dir' for folders)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_new_captions_go_to_the_user_cache_and_are_found_there_next_time(bundle_copy, xdg, capsys):
    before = snapshot(bundle_copy)
    with DepthPipeline.from_bundle(bundle_copy, "ort-cpu") as pipe:
        bias = pipe.set_scene(NEW)
    assert snapshot(bundle_copy) == before  # nothing written into the bundle
    folder = user_scenes_dir(open_bundle(bundle_copy))
    assert folder.parent == xdg / "tr2m-edge" / "scenes"
    hashes = open_bundle(bundle_copy).manifest.hashes
    assert folder.name == f"{hashes['text_encoder'][:16]}-{hashes['head'][:16]}"
    user = CaptionCache(bundle_copy, root=folder)  # the same storage format as BUNDLE/scenes/
    assert [e.caption for e in user.list()] == [NEW]
    np.testing.assert_array_equal(user.get(NEW), bias)
    want = caption_cache(bundle_copy).compute([NEW])  # the bundle's own graphs
    np.testing.assert_allclose(bias, want, rtol=0, atol=1e-6)
    lookup = caption_biases(bundle_copy)
    np.testing.assert_array_equal(lookup.get(NEW), bias)  # found without computing
    assert set(lookup.names().values()) == {CAPTIONS[0], NEW}  # the bundle's, then the user cache's
    for command in (["scenes", "list", bundle_copy], ["info", bundle_copy]):  # both say where the new one is
        code, out, err = run_cli(command, capsys)
        assert code in (0, None), err
        assert f"user cache {folder}: '{NEW}' (computed by run / bench" in " ".join(out.split()), out


def test_a_caption_cached_in_the_bundle_is_read_from_it(bundle_copy, xdg):
    with DepthPipeline.from_bundle(bundle_copy, "ort-cpu") as pipe:
        pipe.set_scene(CAPTIONS[0])  # pre-cached by the export
    assert not (xdg / "tr2m-edge" / "scenes").exists()


def test_no_cache_keeps_new_captions_in_memory(bundle_copy, xdg):
    with DepthPipeline.from_bundle(bundle_copy, "ort-cpu", cache_captions=False) as pipe:
        first = pipe.set_scene(NEW)
        np.testing.assert_array_equal(pipe.set_scene(NEW), first)
    assert not (xdg / "tr2m-edge").exists()


def test_an_unwritable_user_cache_falls_back_to_memory(bundle_copy, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")  # holds for root too
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    before = snapshot(bundle_copy)
    with DepthPipeline.from_bundle(bundle_copy, "ort-cpu") as pipe:
        bias = pipe.set_scene(NEW)
    assert bias.shape == (1, 48) and np.isfinite(bias).all()
    assert "Cannot write the scene cache" in caplog.text and "kept in memory only" in caplog.text
    assert snapshot(bundle_copy) == before


def _immutable(path: Path) -> str | None:
    """Make ``path`` unwritable even for root (immutable flag, recursively); why not, when it cannot."""
    if shutil.which("chattr") is None:
        return "chattr is not installed"
    proc = subprocess.run(["chattr", "-R", "+i", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"chattr +i failed ({proc.stderr.strip() or proc.returncode}; needs root and ext4/xfs/btrfs)"
    try:
        (path / "probe").write_text("x")
    except OSError:
        return None
    (path / "probe").unlink()
    _mutable(path)
    return "the immutable flag did not stop a write here"


def _mutable(path: Path) -> None:
    subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)


def test_a_bundle_that_cannot_be_written_runs_a_new_caption_and_bench(bundle_copy, tmp_path, xdg, capsys):
    before = snapshot(bundle_copy)
    why = _immutable(bundle_copy)
    if why is not None:
        pytest.skip(f"cannot make the bundle unwritable for this user: {why} (a read-only bind mount needs the same)")
    try:
        with pytest.raises(OSError):
            (bundle_copy / "scenes" / "x.json").write_text("{}")  # really unwritable, for this (root) user too
        code, _, err = run_cli(["run", "-b", bundle_copy, "--synthetic", "--frames", 3, "--text", NEW], capsys)
        assert code == 0, err
        assert "done: 3 frames read, 3 written" in err
        report = tmp_path / "bench.json"
        code, _, err = run_cli(["bench", bundle_copy, "--frames", 2, "--warmup", 0, "--modes", "serial", "--json", report],
                               capsys)
        assert code == 0, err
        assert json.loads(report.read_text())["caption"] == CAPTIONS[0]  # the bundle's cached caption
        code, _, err = run_cli(["bench", bundle_copy, "--frames", 1, "--warmup", 0, "--modes", "serial", "--no-reference",
                                "--text", "yet another caption", "--no-cache"], capsys)
        assert code == 0, err
    finally:
        _mutable(bundle_copy)
    assert snapshot(bundle_copy) == before  # not one byte of the bundle changed
    user = CaptionCache(bundle_copy, root=user_scenes_dir(open_bundle(bundle_copy)))
    assert [e.caption for e in user.list()] == [NEW]  # the run's caption; --no-cache left none
