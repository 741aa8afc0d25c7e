"""``tr2m-edge calib`` end to end on the tiny bundle (CPU), and ``run`` / ``bench`` on its INT8 variant."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tr2m_edge.bundle import Manifest, open_bundle, write_manifest
from tr2m_edge.calib.calibrate import calibrate_bundle
from tr2m_edge.parity import abs_rel
from tr2m_edge.runtime import DepthPipeline

CAPTION = "warehouse aisle"  # cached in fp16_bundle
INT8_FILES = ["depth.int8.onnx", "head.int8.onnx", "image_encoder.int8.onnx"]


@pytest.fixture(scope="session")
def int8_bundle(tmp_path_factory, fp16_bundle):
    """fp16_bundle (fp32 + fp16 graphs, dynamic frame size) calibrated once on synthetic scenes."""
    path = tmp_path_factory.mktemp("calib") / "int8"
    shutil.copytree(fp16_bundle, path)
    result = calibrate_bundle(path, synthetic=True, progress=False)  # the defaults: 32 + 8 frames
    return path, result


def test_calibrated_int8_graphs_run_in_onnx_runtime_within_the_drift_limit(int8_bundle, tmp_path):
    path, result = int8_bundle
    assert result.usable and sorted(result.files) == INT8_FILES
    bundle = open_bundle(path)  # every sha256 verified, the new files included
    record = bundle.manifest.calibration
    assert record["usable"] and record["gate"]["abs_rel"] <= 0.02 and record["gate"]["frames"] == 8
    assert record["frames"]["calibration"] == 32 and record["frames"]["held_out"] == 8
    assert record["quantization"]["ops"] == ["Conv", "Gemm", "MatMul"] and "profiler" in record["ops_reason"]
    assert [a["ops"] for a in record["attempts"]] == [["Conv", "Gemm", "MatMul"]]  # passed: no fallback tried
    assert set(record["gate"]["components"]) == {"depth", "image_encoder", "head"}
    for comp in ("depth", "image_encoder", "head"):
        entry = bundle.require(comp, "int8")
        assert entry.inputs == bundle.require(comp, "fp32").inputs  # drop-in replacements
        nodes = {n.op_type for n in onnx.load(str(path / entry.file)).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= nodes
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "fused.onnx")
    ort.InferenceSession(str(path / "depth.int8.onnx"), opts, providers=["CPUExecutionProvider"])
    fused = {n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node}
    assert fused & {"QLinearConv", "QGemm", "MatMulIntegerToFloat", "QLinearMatMul"}  # integer kernels run

    from tr2m_edge.synthetic import iter_scenes

    frames = [s.rgb for s in iter_scenes(3, size=(150, 200), seed=99)]  # frames neither set has seen
    with DepthPipeline.from_bundle(path, "ort-cpu", precision="fp32") as fp32, \
            DepthPipeline.from_bundle(path, "ort-cpu", precision="int8") as int8:
        assert int8.stages.runners["depth"].model == path / "depth.int8.onnx"
        assert int8.stages.runners["preprocess"].model == path / "preprocess.onnx"  # no int8 file: fp32
        fp32.set_scene(CAPTION)
        int8.set_scene(CAPTION)
        want = np.stack([fp32.infer(f).depth for f in frames])
        got = np.stack([int8.infer(f).depth for f in frames])
    assert 0 < abs_rel(got, want) <= 0.02


def test_run_and_bench_accept_a_usable_int8_variant(int8_bundle, tmp_path, cli):
    path, _ = int8_bundle
    code, out, err = cli("run", "-b", path, "--synthetic", "--frames", 2, "--precision", "int8", "--text", CAPTION)
    assert code == 0, err
    code, out, err = cli("info", path)
    assert code == 0 and "int8 calibration (depth, image_encoder, head): metric depth AbsRel" in out and "usable" in out
    report = tmp_path / "bench.json"
    code, out, err = cli("bench", path, "--precision", "fp32,fp16,int8", "--frames", 3, "--warmup", 1,
                         "--modes", "serial,throughput", "--json", report)
    assert code == 0, err
    assert "precisions: fp32, fp16, int8" in out and "Side by side" in out
    data = json.loads(report.read_text())
    assert data["precisions"] == ["fp32", "fp16", "int8"]
    assert [r["precision"] for r in data["reports"]] == ["fp32", "fp16", "int8"]
    for r in data["reports"]:
        assert [m["mode"] for m in r["results"]] == ["serial", "throughput"] and all(m["fps"] > 0 for m in r["results"])
    drift = {r["precision"]: r["drift"] for r in data["reports"]}
    assert drift["fp32"]["max_abs"] == 0.0  # the reference itself
    assert 0 < drift["fp16"]["abs_rel"] < 0.01 and 0 < drift["int8"]["abs_rel"] <= 0.02
    assert 0.9 < drift["int8"]["delta1"] <= 1.0
    rows = {row["precision"]: row for row in data["summary"]}
    assert rows["fp32"]["serial_vs_first"] == pytest.approx(1.0)
    assert rows["int8"]["throughput_fps"] > 0 and rows["int8"]["throughput_vs_first"] > 0


def test_op_types_given_with_ops_get_no_fallback(int8_bundle, tmp_path):
    path = tmp_path / "asked"
    shutil.copytree(int8_bundle[0], path)
    result = calibrate_bundle(path, synthetic=True, num=4, holdout=2, components=["depth"],
                              ops=("Conv", "Gemm", "MatMul"), max_drift=1e-6, progress=False)
    assert not result.usable
    assert [a["ops"] for a in result.record["attempts"]] == [["Conv", "Gemm", "MatMul"]]
    assert result.record["ops_reason"] == "requested with --ops"


def test_a_drift_over_the_limit_marks_the_variant_unusable_and_run_refuses_it(int8_bundle, tmp_path, cli):
    path = tmp_path / "strict"
    shutil.copytree(int8_bundle[0], path)
    code, out, err = cli("calib", path, "--synthetic", "--num", 4, "--holdout", 2, "--components", "depth",
                         "--max-drift", "1e-6", "-q")
    assert code == 1
    assert "UNUSABLE (over the 0.00% limit)" in out and "metric depth AbsRel" in out and "depth.relative_depth" in out
    assert "the INT8 variant is recorded as unusable: AbsRel" in err
    manifest = open_bundle(path).manifest
    assert manifest.calibration["usable"] is False and manifest.calibration["components"] == ["depth"]
    assert [f.file for f in manifest.files if f.precision == "int8"] == ["depth.int8.onnx"]
    assert not (path / "head.int8.onnx").exists()  # a calibration replaces the whole INT8 variant
    # without --ops the measured default failed the gate, so the accurate fallback (Gemm alone) was tried
    # too, with the same ranges; both are recorded and the graph written is the fallback's
    attempts = manifest.calibration["attempts"]
    assert [a["ops"] for a in attempts] == [["Conv", "Gemm", "MatMul"], ["Gemm"]]
    assert not any(a["usable"] for a in attempts) and manifest.calibration["quantization"]["ops"] == ["Gemm"]
    assert "failed the gate" in manifest.calibration["ops_reason"]
    graph = onnx.load(str(path / "depth.int8.onnx")).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    assert not [n for n in graph.node if n.op_type == "Conv" and n.input[0] in dequantized]
    assert [n for n in graph.node if n.op_type == "Gemm" and n.input[0] in dequantized]
    for args in (["run", "-b", path, "--synthetic", "--frames", 1, "--precision", "int8", "--text", "a room"],
                 ["bench", path, "--precision", "fp32,int8", "--frames", 1]):
        code, out, err = cli(*args)
        assert code == 2
        assert "failed its accuracy gate" in err and "tr2m-edge calib" in err and len(err.strip().splitlines()) == 1


def test_bad_input_gives_one_line_errors(fp16_bundle, tmp_path, cli):
    (tmp_path / "empty").mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    for i in range(2):
        (junk / f"frame{i}.png").write_bytes(b"\x89PNG broken")
    no_fp32 = tmp_path / "no_fp32"
    shutil.copytree(fp16_bundle, no_fp32)
    manifest = open_bundle(no_fp32).manifest
    manifest.files = [f for f in manifest.files if not (f.component == "depth" and f.precision == "fp32")]
    write_manifest(no_fp32, manifest)
    cases = [
        ([fp16_bundle, "--images", tmp_path / "empty"], "No images in"),
        ([fp16_bundle, "--images", junk], "None of the 2 images"),
        ([no_fp32, "--synthetic"], "has no fp32 ONNX graph for depth: INT8 calibration starts from the fp32 graphs"),
        ([fp16_bundle, "--synthetic", "--images", junk], "Give exactly one frame source"),
        ([fp16_bundle], "got none"),
        ([fp16_bundle, "--synthetic", "--method", "kl"], "Unknown calibration method 'kl'"),
        ([fp16_bundle, "--synthetic", "--ops", "Conv,Lstm"], "Cannot quantise op type 'Lstm'"),
        ([fp16_bundle, "--synthetic", "--components", "text_encoder"], "Cannot calibrate component(s) ['text_encoder']"),
        ([fp16_bundle, "--synthetic", "--max-drift", "2"], "--max-drift is an AbsRel between 0 and 1"),
        ([tmp_path / "nowhere", "--synthetic"], "Bundle folder not found"),
    ]
    for args, message in cases:
        code, out, err = cli("calib", *args, "-q")
        assert code == 2, (args, out, err)
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert open_bundle(fp16_bundle).manifest.calibration is None  # nothing was written on the way


def test_manifests_without_a_calibration_record_still_load(fp16_bundle):
    import tr2m_edge.bundle as bundle_module

    data = json.loads((fp16_bundle / "manifest.json").read_text())
    data.pop("calibration", None)
    if "digest" in data and hasattr(bundle_module, "manifest_digest"):  # manifests that carry their own digest
        data["digest"] = bundle_module.manifest_digest(data)
    manifest = Manifest.from_dict(data)
    assert manifest.calibration is None
    assert manifest.to_dict()["calibration"] is None
