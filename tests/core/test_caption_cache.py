"""The caption cache (tr2m_edge/caption_cache.py): round trip, correctness, atomicity, tampering."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import tr2m_edge.caption_cache as cache_mod
from tr2m_edge.caption_cache import normalise_caption
from tr2m_edge.errors import BundleError, InputError
from tr2m_edge.runtime.scene_bias import caption_cache


@pytest.fixture()
def bundle(fp16_bundle, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(fp16_bundle, copy)
    return copy


def torch_bias(model, caption):
    with torch.no_grad():
        return model.head.scene_bias(model.encode_text([caption])).numpy()


def test_add_list_get_remove_round_trip(bundle, export_model):
    cache = caption_cache(bundle)
    assert [e.caption for e in cache.list()] == ["warehouse aisle"]  # pre-cached by the export
    entry = cache.add("Office  Desk")
    assert entry.name.startswith("office-desk-") and entry.normalised == "office desk" and entry.shape == (1, 48)
    bias = cache.get("  office desk ")  # same normalised caption, same entry
    assert bias is not None and bias.dtype == np.float32 and bias.shape == (1, 48)
    want = torch_bias(export_model, "Office  Desk")
    assert np.abs(bias - want).max() <= 1e-4 * np.abs(want).max()  # ONNX Runtime, no torch, = the model
    assert np.abs(cache.get("warehouse aisle") - torch_bias(export_model, "warehouse aisle")).max() < 1e-4
    assert sorted(cache.names().values()) == ["Office  Desk", "warehouse aisle"]
    assert cache.remove(entry.name).name == entry.name
    assert cache.get("office desk") is None
    assert cache.remove("Warehouse Aisle").normalised == "warehouse aisle"  # by caption works too
    assert cache.list() == [] and sorted(p.name for p in (bundle / "scenes").iterdir()) == []
    with pytest.raises(InputError, match="No cached scene 'kitchen' in .*Cached: none"):
        cache.remove("kitchen")
    with pytest.raises(InputError, match="The caption is empty"):
        cache.add("   ")


def test_get_or_add_computes_each_caption_once(bundle, monkeypatch):
    cache = caption_cache(bundle)
    calls = []
    real = cache.compute
    monkeypatch.setattr(cache, "compute", lambda caps: calls.append(caps) or real(caps))
    first = cache.get_or_add("loading dock")
    second = caption_cache(bundle).get_or_add("Loading   Dock")  # a new process would find it on disk
    assert calls == [["loading dock"]]
    assert np.array_equal(first, second) and first.shape == (1, 48)


def test_crash_before_the_commit_record_leaves_no_entry(bundle, monkeypatch):
    cache = caption_cache(bundle)
    old = cache.get("warehouse aisle")

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_mod, "write_json_atomic", crash)
    with pytest.raises(BundleError, match="Cannot write the scene cache in .*: No space left on device"):
        cache.add("parking garage")
    assert cache.get("parking garage") is None
    assert [e.caption for e in cache.list()] == ["warehouse aisle"]
    monkeypatch.undo()

    def interrupt(fd):
        raise KeyboardInterrupt  # killed while the new .npy was being written

    monkeypatch.setattr(os, "fsync", interrupt)  # the atomic writer (tr2m_edge.bundle) fsyncs the temp file
    with pytest.raises(KeyboardInterrupt):
        cache.add("warehouse aisle", bias=np.zeros((1, 48), np.float32))
    monkeypatch.undo()
    assert np.array_equal(cache.get("warehouse aisle"), old)  # the old entry is untouched
    assert not list((bundle / "scenes").glob("*.tmp"))
    assert cache.add("parking garage").name in cache.names()


def test_a_killed_writer_never_leaves_a_corrupt_entry(bundle):
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from tr2m_edge.runtime.scene_bias import caption_cache
        cache = caption_cache({str(bundle)!r})
        rng = np.random.default_rng(0)
        print("ready", flush=True)
        i = 0
        while True:
            cache.add(f"scene {{i % 7}}", bias=rng.standard_normal((1, 48)).astype(np.float32))
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    cache = caption_cache(bundle)
    entries = cache.list()
    assert len(entries) >= 2  # the writer got some entries committed
    for e in entries:
        bias = cache.get(e.caption)  # sha256 verified on every read
        assert bias is not None and bias.shape == (1, 48)


def test_a_tampered_entry_is_named_and_repaired_on_demand(bundle, export_model, caplog):
    cache = caption_cache(bundle)
    entry = cache.list()[0]
    npy = bundle / "scenes" / entry.file
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"Scene cache file .*{entry.file} does not match its sha256"):
        cache.get(entry.caption)
    bias = cache.get_or_add(entry.caption)  # the runtime keeps going: recompute, log the file
    assert entry.file in caplog.text
    assert np.abs(bias - torch_bias(export_model, entry.caption)).max() < 1e-4
    assert np.array_equal(cache.get(entry.caption), bias)


def test_normalise_caption():
    assert normalise_caption("  Warehouse \t AISLE\n") == "warehouse aisle"
    with pytest.raises(InputError, match="must be a string"):
        normalise_caption(3)  # type: ignore[arg-type]


def test_scene_bias_needs_neither_torch_nor_open_clip(bundle, run_blocked):
    out = run_blocked("from tr2m_edge.runtime.scene_bias import caption_cache\n"
                      f"print(caption_cache({str(bundle)!r}).get_or_add('a quiet library').shape)")
    assert out.strip() == "(1, 48)"
