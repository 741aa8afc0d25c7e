"""export_bundle: round trips, parity, tamper detection, dynamic sizes, edge preset, failures."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tr2m_edge.bundle import open_bundle
from tr2m_edge.errors import BundleError, ConfigError, ExportError
from tr2m_edge.export import export_bundle
from tr2m_edge.export.graphs import example_frame
from tr2m_edge.model.summary import random_encoder_config
from tr2m_edge.export.parity import torch_reference
from tr2m_edge.parity import TOLERANCES, Tolerance, abs_rel
from tr2m_edge.runtime.comparator import check_parity, run_chain
from tr2m_edge.runtime.runners import OrtRunner
from tr2m_edge.tokenizer import ClipTokenizer

EXPORT_FRAME = (150, 200)  # the dynamic bundle's frame, as in conftest.py
CAPTION = "warehouse aisle"


def runners_of(bundle, precision="fp32"):
    out = {}
    for comp in bundle.manifest.components():
        if comp in ("tokenizer", "check"):  # the vocabulary, the parity inputs: not graphs
            continue
        entry = bundle.manifest.find(comp, precision) or bundle.manifest.find(comp, "fp32")
        out[comp] = OrtRunner(bundle.path(entry)).activate()
    return out


def test_fp32_and_fp16_round_trip_with_parity(fp16_bundle, export_model):
    bundle = open_bundle(fp16_bundle)  # verifies every sha256
    man = bundle.manifest
    assert man.components() == ["check", "depth", "head", "image_encoder", "preprocess", "scene_bias", "text_encoder",
                                "tokenizer"]
    for comp in ("depth", "image_encoder", "head"):
        entry = bundle.require(comp, "fp16")
        assert all(t.dtype in ("float32", "int64") for t in entry.inputs + entry.outputs)  # fp32 I/O
    assert man.frame_size is None and man.dynamic is False
    assert [t.name for t in bundle.require("head").inputs] == ["image_tokens", "relative_depth", "scene_bias", "frame_hw"]
    assert man.exporter["name"] == "torchscript" and man.exporter["opset"] == 17
    assert man.parity["fp32"]["passed"] and man.parity["fp16"]["passed"]
    assert man.parity["fp32"]["tolerance"] == {"rel": 1e-3, "abs_rel": 1e-3}
    assert man.parity["fp16"]["depth"]["abs_rel"] <= 0.01

    # Independent re-check from the files, on a frame and caption the export never saw.
    frame = example_frame((123, 171), seed=7).numpy()
    ids = ClipTokenizer()(["a kitchen with a wooden table"])
    ref = torch_reference(export_model, frame, ids, dynamic_frame=True)
    assert ref.depth.shape == (1, 1, 123, 171)
    assert float(np.std(ref.depth)) > 0.05 and (ref.depth < export_model.cfg.max_depth).mean() > 0.9  # not clipped flat
    fp32 = check_parity(runners_of(bundle, "fp32"), ref, export_model.cfg, precision="fp32")
    fp16 = check_parity(runners_of(bundle, "fp16"), ref, export_model.cfg, precision="fp16")
    assert fp32.passed and fp32.depth_abs_rel < 1e-4, fp32.failures()
    assert fp16.passed and 0 < fp16.depth_abs_rel < 0.01, fp16.failures()
    assert fp16.depth_abs_rel > fp32.depth_abs_rel  # the fp16 files really are lower precision


def test_folded_head_bundle_equals_full_cross_attention_model(fp16_bundle, export_model):
    bundle = open_bundle(fp16_bundle)
    frame = example_frame((97, 131), seed=11).numpy()
    tok = ClipTokenizer()
    ref = torch_reference(export_model, frame, tok([CAPTION]), reference=True, dynamic_frame=True)
    got = run_chain(runners_of(bundle), export_model.cfg, frame, tok([CAPTION]))["depth"]
    assert got.shape == ref.depth.shape == (1, 1, 97, 131)
    assert abs_rel(got, ref.depth) < 1e-4
    # Non-vacuous: another caption's bias gives a measurably different depth map.
    other = run_chain(runners_of(bundle), export_model.cfg, frame, tok(["a snowy mountain road at night"]))["depth"]
    assert abs_rel(other, ref.depth) > 100 * abs_rel(got, ref.depth)


def test_flipped_byte_in_any_bundle_file_is_caught_by_name(fp16_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(fp16_bundle, copy)
    files = open_bundle(copy).manifest.files
    assert len(files) == 11  # 9 graphs, the vocabulary and check.npz (the parity inputs `build` checks engines on)
    for entry in files:
        path = copy / entry.file
        original = path.read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))
        with pytest.raises(BundleError, match=rf"{entry.file}.*does not match its sha256"):
            open_bundle(copy)
        path.write_bytes(original)
    open_bundle(copy)
    (copy / "head.onnx").unlink()
    with pytest.raises(BundleError, match=r"Bundle file missing: .*head\.onnx"):
        open_bundle(copy)
    (copy / "manifest.json").write_text("{ not json")
    with pytest.raises(BundleError, match=r"manifest\.json is corrupt"):
        open_bundle(copy)


def test_dynamic_export_is_correct_at_two_other_sizes(dynamic_bundle, export_model):
    bundle = open_bundle(dynamic_bundle)
    assert bundle.manifest.dynamic and bundle.manifest.frame_size == EXPORT_FRAME
    assert bundle.manifest.parity["fp32_second_size"]["passed"]
    sess = {c: ort.InferenceSession(str(bundle.path(bundle.require(c))), providers=["CPUExecutionProvider"])
            for c in ("depth", "image_encoder", "head", "text_encoder", "scene_bias")}
    ids = ClipTokenizer()([CAPTION])
    gen = torch.Generator().manual_seed(5)
    for size in ((112, 154), (196, 252)):
        image = torch.randn(2, 3, *size, generator=gen)
        with torch.no_grad():
            rel, feats = export_model.encode_frame(image)
            bias = export_model.head.scene_bias(export_model.encode_text(torch.from_numpy(ids)))
            out = export_model.head_forward(rel, feats, bias=bias, frame_size=EXPORT_FRAME)
        o_rel = sess["depth"].run(None, {"image": image.numpy()})[0]
        o_feats = sess["image_encoder"].run(None, {"image": image.numpy()})[0]
        text = sess["text_encoder"].run(None, {"token_ids": ids})[0]
        o_bias = sess["scene_bias"].run(None, {"text_embedding": text})[0]
        depth, scale, shift = sess["head"].run(None, {"image_tokens": o_feats, "relative_depth": o_rel, "scene_bias": o_bias})
        assert o_rel.shape == (2, 1, *size) and scale.shape == (2, 1, *size)  # not stuck at the export size
        assert depth.shape == (2, 1, *EXPORT_FRAME)
        for got, want in ((o_rel, rel), (o_feats, feats), (scale, out.scale), (shift, out.shift), (depth, out.depth)):
            want = want.numpy()
            assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()


def test_edge_preset_shared_backbone_exports(tmp_path, edge_model):
    path = export_bundle(edge_model, tmp_path / "edge", frame_size=(120, 160), progress=False)
    bundle = open_bundle(path)
    assert "image_encoder" not in bundle.manifest.components()
    depth = bundle.require("depth")
    assert [t.name for t in depth.outputs] == ["relative_depth", "image_tokens"]
    assert depth.outputs[1].shape == (1, 130, 32)
    assert bundle.manifest.parity["fp32"]["passed"]
    assert bundle.manifest.model.shared_backbone


def test_existing_non_bundle_folder_is_refused(tmp_path, export_model):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(ExportError, match="is not empty and is not a tr2m-edge bundle; refusing to overwrite"):
        export_bundle(export_model, target, progress=False)
    assert (target / "holiday.jpg").read_bytes() == b"jpeg"


def test_unwritable_output_folder_is_one_clear_error(tmp_path, export_model):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match=r"Cannot write the bundle to .*a-file/bundle: .*Choose a writable folder"):
        export_bundle(export_model, blocker / "bundle", progress=False)
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ExportError, match="Cannot write the bundle to"):
            export_bundle(export_model, locked / "bundle", progress=False)


def test_failed_export_leaves_the_previous_bundle_and_no_partial_folder(tmp_path, dynamic_bundle, export_model, monkeypatch):
    dest = tmp_path / "dest"
    shutil.copytree(dynamic_bundle, dest)
    before = (dest / "manifest.json").read_text()
    monkeypatch.setitem(TOLERANCES, "fp32", Tolerance(rel=0.0, abs_rel=0.0))  # no export can meet this
    with pytest.raises(ExportError, match=r"fp32 parity check failed on onnxruntime-cpu: .*relative error"):
        export_bundle(export_model, dest, frame_size=(60, 80), progress=False)
    assert (dest / "manifest.json").read_text() == before
    open_bundle(dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]  # no .dest.partial-* left behind


def test_bad_arguments_fail_before_any_work(tmp_path, export_model):
    with pytest.raises(ConfigError, match="not a multiple of 14"):
        export_bundle(export_model, tmp_path / "x", input_size=(140, 180), progress=False)
    with pytest.raises(ExportError, match="Unknown exporter 'onnx2'. Available: auto, torchscript, dynamo"):
        export_bundle(export_model, tmp_path / "x", exporter="onnx2", progress=False)
    with pytest.raises(ExportError, match="Opset 13 is too old"):
        export_bundle(export_model, tmp_path / "x", opset=13, progress=False)
    assert not (tmp_path / "x").exists()


def test_random_encoder_config_uses_published_sizes():
    from tr2m_edge.config import get_preset

    cfg = random_encoder_config(get_preset("paper"))
    assert (cfg.image.hidden_size, cfg.image.num_layers, cfg.image.num_heads) == (1024, 24, 16)
    assert (cfg.depth.hidden_size, cfg.depth.num_layers) == (384, 12) and cfg.depth.is_random
    assert cfg.text.embed_dim == 768 and cfg.text.source is None
    with pytest.raises(ConfigError, match="No known size for encoder 'my/own-vit'"):
        random_encoder_config(cfg.replace(image=cfg.image.__class__("dinov2", source="my/own-vit")))


def test_manifest_records_tools_hashes_and_tokenizer(fp16_bundle):
    data = json.loads((fp16_bundle / "manifest.json").read_text())
    assert data["tools"]["torch"] and data["tools"]["onnxruntime"]
    assert len(data["hashes"]["text_encoder"]) == 64 and len(data["hashes"]["head"]) == 64
    assert data["tokenizer"]["file"] == "tokenizer/bpe_simple_vocab_16e6.txt.gz"
    assert data["tokenizer"]["context_length"] == 77 and data["tokenizer"]["eot_id"] == 49407
    assert data["exporter"]["fp16"]["head"]["fp32_nodes"] > 0
