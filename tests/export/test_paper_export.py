"""Paper-size export (DINOv2-L + DA-S + CLIP-L text, random weights at the published sizes).

Slow (minutes, ~1.2 GB image-encoder ONNX): kept out of the default run; select with
``pytest -m slow tests/export/test_paper_export.py -s`` to see the progress display.
"""

from __future__ import annotations

import resource
import time

import pytest

from tr2m_edge.bundle import open_bundle
from tr2m_edge.config import get_preset
from tr2m_edge.checkpoint import random_head_checkpoint
from tr2m_edge.export import export_bundle
from tr2m_edge.model.summary import random_encoder_config


@pytest.mark.slow
def test_paper_size_export_fits_a_24_gb_cpu_machine(tmp_path):
    cfg = random_encoder_config(get_preset("paper"))
    assert cfg.preprocess.input_size == (434, 560) and cfg.head.in_channels == 1024
    t0 = time.perf_counter()
    path = export_bundle(random_head_checkpoint(cfg), tmp_path / "paper", fp16=True, frame_size=(480, 640),
                         scenes=["warehouse aisle"], progress=True)
    minutes = (time.perf_counter() - t0) / 60
    bundle = open_bundle(path)
    sizes = {f.file: (path / f.file).stat().st_size / 1e6 for f in bundle.manifest.files}
    print(f"\npaper export: {minutes:.1f} min; sizes (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items()))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"peak resident memory: {peak_gb:.1f} GB")
    assert 1100 < sizes["image_encoder.onnx"] < 1400  # DINOv2-L/14: 304 M parameters in fp32
    assert 550 < sizes["image_encoder.fp16.onnx"] < 700
    assert bundle.require("image_encoder").outputs[0].shape == (1, 31 * 40, 1024)
    assert bundle.manifest.parity["fp32"]["passed"] and bundle.manifest.parity["fp16"]["passed"]
    assert peak_gb < 24
