"""Export options of released-model fidelity: local encoders through the CLI, fp16 caption
embeddings, antialiased preprocess graph (opset 18), the depth range; then `run` on the bundle."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from test_export_cli import run_cli

from tr2m_edge.bundle import open_bundle
from tr2m_edge.cli import main
from tr2m_edge.model.components import PreprocessComponent
from tr2m_edge.preprocess import preprocess_frame
from tr2m_edge.runtime.runners.onnxrt import CONV_FREE_DISABLED, OrtRunner
from tr2m_edge.tokenizer import ClipTokenizer

CAPTION = "a photo of a warehouse aisle"


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("local-encoders")
    tiny_model.depth_encoder.model.save_pretrained(root / "depth")
    tiny_model.image_encoder.model.save_pretrained(root / "dino")
    torch.save({k: v for k, v in tiny_model.text_encoder.model.state_dict().items() if not k.startswith("visual.")},
               root / "text.pt")
    return root


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, encoders):
    """`export` of a tiny random head over encoders from disk, with every fidelity option."""
    out = tmp_path_factory.mktemp("fidelity") / "bundle"
    with pytest.raises(SystemExit) as info:
        main(["export", "--random-head", "--preset", "tiny", "-o", str(out), "-q", "--offline",
              "--depth-model", str(encoders / "depth"), "--image-model", str(encoders / "dino"),
              "--text-model", str(encoders / "text.pt"), "--text-fp16", "--resize", "antialias",
              "--min-depth", "0.05", "--max-depth", "12", "--scene", CAPTION])
    assert info.value.code in (0, None)
    return out


def test_bundle_config_records_sources_range_resize_and_text_precision(bundle, encoders):
    m = open_bundle(bundle).manifest
    cfg = m.model
    assert cfg.depth.source == str(encoders / "depth") and cfg.image.source == str(encoders / "dino")
    assert cfg.text.pretrained == str(encoders / "text.pt")
    assert (cfg.min_depth, cfg.max_depth) == (0.05, 12.0)
    assert cfg.preprocess.resize == "antialias" and m.exporter["resize"] == "antialias"
    assert cfg.text.precision == "fp16" and m.exporter["text_precision"] == "fp16"
    texts = [f for f in m.files if f.component == "text_encoder"]
    assert [(f.file, f.precision) for f in texts] == [("text_encoder.fp16.onnx", "fp16")]
    assert m.exporter["opsets"]["preprocess"] >= 18 and m.exporter["opsets"]["depth"] == 17


def test_fp16_text_graph_gives_the_fp16_tower_embedding(bundle, tiny_model):
    ids = ClipTokenizer()([CAPTION])
    with OrtRunner(bundle / "text_encoder.fp16.onnx", disabled_optimizers=CONV_FREE_DISABLED) as runner:
        got = runner.infer({"token_ids": ids})["text_embedding"]
    with torch.no_grad():
        fp16 = tiny_model.text_encoder.at_precision("fp16")(torch.from_numpy(ids)).float().numpy()
        fp32 = tiny_model.text_encoder(torch.from_numpy(ids)).float().numpy()
    assert np.abs(got - fp16).max() <= 1e-3 * np.abs(fp16).max()
    assert np.abs(got - fp32).max() > 1e-4  # fp16 rounding shows: not an fp32 computation
    graph = onnx.load(str(bundle / "text_encoder.fp16.onnx")).graph
    weights = [t for t in graph.initializer if len(t.dims) == 2 and min(t.dims) > 1]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    m = open_bundle(bundle).manifest
    assert m.parity["fp32"]["passed"]


def test_antialias_preprocess_graph_matches_torch_and_numpy(bundle):
    graph = onnx.load(str(bundle / "preprocess.onnx"))
    resizes = [n for n in graph.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 1 and any(a.name == "antialias" and a.i == 1 for a in resizes[0].attribute)
    cfg = open_bundle(bundle).manifest.model.preprocess
    session = ort.InferenceSession(str(bundle / "preprocess.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for shape in ((360, 640), (90, 120)):  # a downscale (antialiased) and an upscale
        frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        got = session.run(None, {"frame": frame})[0]
        with torch.no_grad():
            want = PreprocessComponent(cfg)(torch.from_numpy(frame)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-4)
        np.testing.assert_allclose(preprocess_frame(frame, cfg), want, atol=1e-4)
        plain = preprocess_frame(frame, type(cfg)(input_size=cfg.input_size))  # the eval default differs
        assert np.abs(plain - want).max() > 1e-2


def test_run_on_the_bundle_clips_to_its_range(bundle, tmp_path, capsys):
    images = tmp_path / "frames"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 256, (150, 200, 3), dtype=np.uint8))
    code, _, err = run_cli(["run", "-b", bundle, "--images", images, "--text", CAPTION, "--mode", "serial",
                        "--save-depth", tmp_path / "depth", "--save-npy"], capsys)
    assert code in (0, None), err
    records = [json.loads(line) for line in (tmp_path / "depth" / "frames.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["png_scale"] == 1000.0 and r["png_clipped"] == 0 for r in records)
    for r in records:
        depth = np.load(tmp_path / "depth" / r["npy"])
        assert depth.min() >= 0.05 - 1e-6 and depth.max() <= 12.0 + 1e-5


def test_bad_export_options_are_one_line_errors(capsys, encoders):
    for args, message in (
        (["--resize", "lanczos"], "Unknown resize 'lanczos'. Available: bilinear, antialias"),
        (["--min-depth", "5", "--max-depth", "2"], "Depth range must satisfy 0 < min_depth < max_depth"),
        (["--depth-model", encoders / "missing"], "Could not load the Depth Anything model from"),
        (["--random-encoders", "--depth-model", encoders / "depth"], "--random-encoders replaces every encoder"),
    ):
        code, _, err = run_cli(["export", "--random-head", "--preset", "tiny", "-q", "-o", encoders / "never", *args], capsys)
        line = " ".join(err.split())
        assert code == 2 and line.startswith("error:") and message in line, line
