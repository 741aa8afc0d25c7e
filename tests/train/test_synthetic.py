"""Procedural scenes (tr2m_edge.synthetic) and their torch Dataset wrapper."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import numpy as np
import pytest

from tr2m_edge.errors import DataError, InputError
from tr2m_edge.synthetic import FAMILIES, SyntheticFrame, iter_scenes, render_scene, scene_family, scene_seed
from tr2m_edge.train.datasets.synthetic import SyntheticDataset

# visible depth per family (metres), with a little slack around the documented ranges
RANGES = {"tabletop": (0.12, 1.6), "room": (0.6, 10.5), "street": (2.8, 85.0)}


def test_render_is_deterministic_and_well_formed() -> None:
    a, b = render_scene(7), render_scene(7)
    assert isinstance(a, SyntheticFrame)
    assert a.rgb.shape == (140, 182, 3) and a.rgb.dtype == np.uint8
    assert a.depth.shape == (140, 182) and a.depth.dtype == np.float32
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth) and a.caption == b.caption
    assert np.isfinite(a.depth).all() and (a.depth > 0).all()
    k = a.intrinsics
    assert k.shape == (3, 3) and k.dtype == np.float32
    assert k[0, 0] == k[1, 1] > 0 and k[0, 2] == pytest.approx(90.5) and k[1, 2] == pytest.approx(69.5)
    assert a.rgb.std() > 10, "a textured, shaded image, not a flat colour"
    c = render_scene(8)
    assert not np.array_equal(a.rgb, c.rgb)


def test_family_ranges_and_captions() -> None:
    for fam in FAMILIES:
        frames = [render_scene(s, (70, 91), fam) for s in range(8)]
        depth = np.concatenate([f.depth.ravel() for f in frames])
        lo, hi = RANGES[fam]
        assert depth.min() >= lo and depth.max() <= hi, (fam, depth.min(), depth.max())
        for f in frames:
            assert f.family == fam
            others = [w for w in ("tabletop", "room", "street") if w != fam]
            assert ("tabletop" if fam == "tabletop" else fam) in f.caption
            assert not any(w in f.caption for w in others), f.caption
        assert len({f.caption for f in frames}) >= 6, "captions follow each scene's parameters"
    medians = [np.median(render_scene(3, (70, 91), fam).depth) for fam in FAMILIES]
    assert medians[0] < medians[1] < medians[2]


def test_same_layout_at_another_scale_looks_identical() -> None:
    """The image alone cannot tell the families apart: only the caption carries the scale."""
    table, street = render_scene(11, (70, 91), "tabletop"), render_scene(11, (70, 91), "street")
    assert np.array_equal(table.rgb, street.rgb)
    ratio = street.depth / table.depth
    assert ratio.std() / ratio.mean() < 1e-5 and ratio.mean() > 10
    assert table.caption != street.caption


def test_caption_describes_side_walls_and_light() -> None:
    captions = [render_scene(s, (28, 28)).caption for s in range(60)]
    assert any(" on the left" in c or " on the right" in c for c in captions)
    assert any("warm light" in c for c in captions) and any("cool light" in c for c in captions)


def test_iter_scenes_streams_and_cycles_families() -> None:
    frames = list(iter_scenes(6, (28, 42), seed=3))
    assert [f.family for f in frames] == [scene_family(3, i) for i in range(6)]
    assert {f.family for f in frames[:3]} == set(FAMILIES)
    again = render_scene(scene_seed(3, 4), (28, 42), scene_family(3, 4))
    assert np.array_equal(frames[4].rgb, again.rgb)
    endless = list(itertools.islice(iter_scenes(None, (28, 28), families=("room",)), 4))
    assert len(endless) == 4 and all(f.family == "room" for f in endless)
    assert not np.array_equal(next(iter_scenes(1, (28, 28), seed=0)).rgb, next(iter_scenes(1, (28, 28), seed=1)).rgb)


def test_bad_arguments_raise() -> None:
    with pytest.raises(InputError, match="Unknown scene family 'forest'"):
        render_scene(0, family="forest")
    with pytest.raises(InputError, match=r"both >= 8 pixels; got \(4, 4\)"):
        render_scene(0, size=(4, 4))
    with pytest.raises(InputError, match="count must be >= 0"):
        list(iter_scenes(-1))


def test_two_hundred_frames_render_and_core_module_has_no_torch() -> None:
    start = time.perf_counter()
    frames = list(iter_scenes(200, (140, 182)))
    seconds = time.perf_counter() - start
    print(f"200 synthetic frames at 140x182: {seconds:.2f} s")
    assert len(frames) == 200 and all((f.depth > 0).all() for f in frames)
    code = "import sys, tr2m_edge.synthetic as s; s.render_scene(0, (28, 28)); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_dataset_wrapper_views() -> None:
    ds = SyntheticDataset(6, size=(28, 42), seed=5)
    assert len(ds) == 6
    s = ds[2]
    frame = render_scene(scene_seed(5, 2), (28, 42), scene_family(5, 2))
    assert s["image"].shape == (3, 28, 42) and s["depth"].shape == (1, 28, 42)
    assert np.allclose(s["image"].numpy().transpose(1, 2, 0), frame.rgb / 255.0, atol=1e-6)
    assert np.array_equal(s["depth"][0].numpy(), frame.depth)
    assert s["caption"] == frame.caption and s["group"] == frame.family
    with pytest.raises(DataError, match="count > 0"):
        SyntheticDataset(0)


def test_remembered_scenes_render_once_and_hand_out_copies(monkeypatch):
    import tr2m_edge.synthetic.render as render
    from tr2m_edge.synthetic import remembered_scenes, render_scene

    calls = []
    real = render._render
    monkeypatch.setattr(render, "_render", lambda *a: calls.append(a) or real(*a))
    with remembered_scenes():
        first = render_scene(7, (28, 42))
        first.rgb[:] = 0  # a caller scribbling on its frame ...
        again = render_scene(7, (28, 42))
        with remembered_scenes():  # nested blocks share the store
            render_scene(7, (28, 42))
    assert len(calls) == 1 and again.rgb.any()  # ... does not change what the next caller gets
    np.testing.assert_array_equal(again.rgb, render_scene(7, (28, 42)).rgb)
    assert len(calls) == 2  # outside the block every call renders


def test_caption_scale_reads_back_the_family_and_size_word_of_every_caption() -> None:
    from tr2m_edge.synthetic import SIZE_WORDS, caption_scale

    frames = list(iter_scenes(90, size=(28, 36), seed=5))
    read = [caption_scale(f.caption) for f in frames]
    assert [fam for fam, _ in read] == [f.family for f in frames]
    assert {size for _, size in read} == set(SIZE_WORDS)
    for family in FAMILIES:  # "large" scenes of a family are deeper, on average, than its "small" ones
        depth = {w: [float(np.median(f.depth)) for f, (fam, s) in zip(frames, read) if fam == family and s == w]
                 for w in ("small", "large")}
        assert np.mean(depth["large"]) > np.mean(depth["small"])
    with pytest.raises(InputError, match="names none of the synthetic families"):
        caption_scale("warehouse aisle")
