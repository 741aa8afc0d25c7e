"""``tr2m-edge build``: what runs without TensorRT (refusals, check inputs, the reference, the install
step) and, where TensorRT and a GPU are, the real build (skipped here with the reason)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from rt_common import FRAME_SIZE, distinct_frames, run_cli

from tr2m_edge.bundle import CHECK_CAPTION, ComponentFile, check_engine_compat, open_bundle, sha256_file
from tr2m_edge.bundle import write_manifest
from tr2m_edge.errors import BundleError
from tr2m_edge.runtime import DepthPipeline
from tr2m_edge.runtime.build import EngineSet, check_inputs, engine_file, graph_reference, install_engines
from tr2m_edge.system import EngineTarget

CLI = [sys.executable, "-m", "tr2m_edge"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here: the refusal cannot happen")
def test_build_without_tensorrt_refuses_in_one_line_and_leaves_the_bundle_alone(bundle_copy):
    before = sorted(p.name for p in bundle_copy.iterdir())
    proc = subprocess.run([*CLI, "build", str(bundle_copy)], capture_output=True, text=True, timeout=120, env=ENV)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: tr2m-edge build needs TensorRT and a CUDA GPU. TensorRT is not installed")
    assert "pip install 'tr2m-edge[gpu]'" in lines[0] and "JetPack's TensorRT" in lines[0]
    assert sorted(p.name for p in bundle_copy.iterdir()) == before  # no staging folder left behind


@pytest.mark.parametrize("args, message", [
    (["--int8"], r"INT8 engines are built by `tr2m-edge calib BUNDLE --images DIR` on the target"),
    (["--fp16", "--fp32"], r"Give one precision; got --fp16 --fp32"),
    (["--device", "cpu"], r"build makes TensorRT engines for a GPU; --device cpu has none"),
    (["--device", "gpu1"], r"--device 'gpu1' is not a device: give auto, cpu, a GPU index"),
])
def test_build_refuses_what_it_cannot_build_before_looking_for_tensorrt(bundle_copy, capsys, args, message):
    code, _, err = run_cli(["build", bundle_copy, *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err


def test_build_on_a_missing_bundle_names_it(tmp_path, capsys):
    code, _, err = run_cli(["build", tmp_path / "nope"], capsys)
    assert code == 2 and "Bundle folder not found" in err


def test_the_check_inputs_are_the_exports_parity_frame_and_caption(bundle_copy, run_blocked):
    from tr2m_edge.export.graphs import example_frame
    from tr2m_edge.tokenizer import ClipTokenizer

    frame, ids, origin = check_inputs(open_bundle(bundle_copy))
    np.testing.assert_array_equal(frame, example_frame(FRAME_SIZE, seed=1).numpy())  # export's parity frame
    np.testing.assert_array_equal(ids, ClipTokenizer()([CHECK_CAPTION]))
    assert origin == f"check.npz ('{CHECK_CAPTION}')"
    # Read without PyTorch, as on a Jetson: the same bytes.
    out = run_blocked("import sys\nimport numpy as np\nfrom tr2m_edge.bundle import open_bundle\n"
                      "from tr2m_edge.runtime.build import check_inputs\n"
                      f"f, i, _ = check_inputs(open_bundle({str(bundle_copy)!r}))\n"
                      "print(int(f.astype(np.int64).sum()), int(i.sum()), sys.modules.get('torch') is not None)",
                      blocked=("torch", "open_clip", "onnx"))
    assert out.split() == [str(int(frame.astype(np.int64).sum())), str(int(ids.sum())), "False"]


def test_bundles_without_check_inputs_use_a_synthetic_scene(bundle_copy):
    b = open_bundle(bundle_copy)
    manifest = dataclasses.replace(b.manifest, files=[f for f in b.manifest.files if f.component != "check"])
    write_manifest(bundle_copy, manifest)
    (bundle_copy / "check.npz").unlink()
    frame, ids, origin = check_inputs(open_bundle(bundle_copy))
    assert frame.shape == (*FRAME_SIZE, 3) and frame.dtype == np.uint8 and frame.std() > 5
    assert ids.shape == (1, 77) and origin.startswith("synthetic scene 1")


def test_the_build_reference_is_the_bundle_graphs_on_the_check_frame(bundle_copy):
    """The reference half of the engine parity check (the candidate half needs TensorRT)."""
    b = open_bundle(bundle_copy)
    frame, ids, _ = check_inputs(b)
    ref = graph_reference(b, frame, ids)
    assert set(ref.inputs) == {"preprocess", "depth", "image_encoder", "head", "text_encoder", "scene_bias"}
    with DepthPipeline.from_bundle(bundle_copy, "ort-cpu", precision="fp32", cache_captions=False) as pipe:
        pipe.set_scene(CHECK_CAPTION)
        depth = pipe.infer(frame).depth
    np.testing.assert_allclose(ref.depth.reshape(depth.shape), depth, rtol=1e-5, atol=1e-5)
    lo, hi = b.config.min_depth, b.config.max_depth
    assert np.mean((ref.depth > lo) & (ref.depth < hi)) > 0.5  # a real depth map, not the clip limits


ENGINES = ("depth", "image_encoder", "head")
HERE = EngineTarget("NVIDIA Jetson AGX Orin", "8.7", "10.3.0")
OTHER = EngineTarget("NVIDIA GeForce RTX 4090", "8.9", "10.7.0")


def staged(path, tmp_path, precision, payload):
    """An EngineSet over opaque files: the install step only moves, hashes and lists them (nothing is built here)."""
    b = open_bundle(path)
    out = Path(tempfile.mkdtemp(prefix=f"staged-{precision}-", dir=tmp_path))
    engines = EngineSet(precision)

    for comp in ENGINES:
        path = out / engine_file(comp, precision)
        path.write_bytes(payload + comp.encode())
        src = b.require(comp, "fp32")
        engines.paths[comp] = path
        engines.facts[comp] = {"source": src.file}
        engines.entries.append(ComponentFile(comp, engine_file(comp, precision), sha256_file(path), precision,
                                             "engine", src.inputs, src.outputs))
    return b, engines


def test_install_lists_engines_keeps_same_target_ones_and_removes_foreign_ones(bundle_copy, tmp_path):
    """The install transaction (manifest, fingerprint, stale engines); NOT a build: the files are opaque bytes."""
    b, fp16 = staged(bundle_copy, tmp_path, "fp16", b"opaque-1 ")
    assert install_engines(b, fp16, HERE, 4096, {"tensorrt-fp16": {"passed": True}}) == []
    m = open_bundle(bundle_copy).manifest  # every sha256 verified, the new files too
    assert {f.file for f in m.files if f.format == "engine"} == {f"{c}.fp16.engine" for c in ENGINES}
    depth = m.find("depth", "fp16", "engine")
    assert depth.inputs == m.find("depth", "fp32", "onnx").inputs and depth.outputs == m.find("depth").outputs
    assert m.tensorrt["gpu"] == HERE.gpu and m.tensorrt["version"] == "10.3.0" and m.tensorrt["precision"] == "fp16"
    assert m.parity["tensorrt-fp16"] == {"passed": True} and "fp32" in m.parity
    check_engine_compat(m, HERE)
    with pytest.raises(BundleError, match="rebuild with `tr2m-edge build BUNDLE` on this device"):
        check_engine_compat(m, OTHER)

    b, fp32 = staged(bundle_copy, tmp_path, "fp32", b"opaque-2 ")  # same target: the fp16 engines stay
    assert install_engines(b, fp32, HERE, 1024, {"tensorrt-fp32": {"passed": True}}) == []
    m = open_bundle(bundle_copy).manifest
    assert len([f for f in m.files if f.format == "engine"]) == 6 and m.tensorrt["precision"] == "fp16, fp32"
    assert set(m.tensorrt["engines"]) == {f"{c}.{p}.engine" for c in ENGINES
                                          for p in ("fp16", "fp32")}

    b, other = staged(bundle_copy, tmp_path, "fp16", b"opaque-3 ")  # another GPU: everything built for HERE goes
    removed = install_engines(b, other, OTHER, 4096, {"tensorrt-fp16": {"passed": True}})
    assert sorted(removed) == sorted(f"{c}.fp32.engine" for c in ENGINES)
    m = open_bundle(bundle_copy).manifest
    assert {f.file for f in m.files if f.format == "engine"} == {f"{c}.fp16.engine" for c in ENGINES}
    assert m.tensorrt["gpu"] == OTHER.gpu and m.tensorrt["precision"] == "fp16" and "tensorrt-fp32" not in m.parity
    assert not any((bundle_copy / f"{c}.fp32.engine").exists() for c in ENGINES)
    assert (bundle_copy / "depth.fp16.engine").read_bytes() == b"opaque-3 depth"


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_build_makes_engines_that_match_the_graphs_and_run(bundle_copy, run_blocked, trt_device):
    device = trt_device
    out = run_blocked(  # on the target there is no PyTorch
        "from tr2m_edge.runtime.build import build_bundle\n"
        f"r = build_bundle({str(bundle_copy)!r}, precision='fp16', progress=False)\nprint(r.describe())",
        blocked=("torch", "open_clip", "onnx"), timeout=1800)
    assert "Built 3 fp16 engine(s)" in out and "passed" in out
    m = open_bundle(bundle_copy).manifest
    assert m.tensorrt["gpu"] == device.gpu and m.parity["tensorrt-fp16"]["passed"]
    check_engine_compat(m, device)
    frames = distinct_frames(4)
    with DepthPipeline.from_bundle(bundle_copy, "trt", precision="fp16") as trt, \
            DepthPipeline.from_bundle(bundle_copy, "ort-cpu", precision="fp32") as ref:
        for pipe in (trt, ref):
            pipe.set_scene(CHECK_CAPTION)
        for f in frames:
            a, b = trt.infer(f).depth, ref.infer(f).depth
            assert np.mean(np.abs(a - b) / b) < 1e-2
