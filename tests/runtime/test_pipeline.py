"""DepthPipeline on the tiny bundle: ORT equals the PyTorch reference, maps, scenes, no torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from rt_common import CAPTIONS, FRAME_SIZE

from tr2m_edge.errors import BackendError, ConfigError, InputError
from tr2m_edge.preprocess import resize_bilinear
from tr2m_edge.runtime import DepthPipeline, SyntheticSource, VideoSource

# ORT fp32 vs PyTorch fp32 on the same weights, per pixel: the exporter's fp32 parity bar.
# Measured max 1.6e-4 (mean 1e-6): bilinear resizes of D_m, whose neighbours differ by many metres on this
# random model, turn float32 rounding of the sampling coordinates into ~1e-3 m at edges.
RTOL = 1e-3


def test_synthetic_stream_matches_the_pytorch_reference(ort_pipeline, torch_reference):
    ort_out = list(ort_pipeline.stream(SyntheticSource(6, FRAME_SIZE, seed=11)))
    ref_out = list(torch_reference.stream(SyntheticSource(6, FRAME_SIZE, seed=11), mode="serial"))
    assert [r.index for r in ort_out] == list(range(6))
    for a, b in zip(ort_out, ref_out):
        np.testing.assert_array_equal(a.rgb, b.rgb)
        assert a.depth.shape == FRAME_SIZE and a.depth.dtype == np.float32
        clipped = np.mean((a.depth <= 1e-3) | (a.depth >= 80.0))
        assert np.ptp(a.depth) > 1.0 and clipped < 0.5  # a real map, not the clip values
        np.testing.assert_allclose(a.depth, b.depth, rtol=RTOL)
        assert a.depth_gt is not None and a.depth_gt.shape == FRAME_SIZE


def test_video_file_matches_the_pytorch_reference(ort_pipeline, torch_reference, synthetic_frames, tmp_path):
    import cv2

    path = tmp_path / "in.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (FRAME_SIZE[1], FRAME_SIZE[0]))
    for f in synthetic_frames[:5]:
        writer.write(f[:, :, ::-1])
    writer.release()
    # Independent decode of the same file, converted BGR -> RGB by hand.
    cap = cv2.VideoCapture(str(path))
    decoded = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        decoded.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    ort_out = list(ort_pipeline.stream(VideoSource(path)))
    assert len(ort_out) == len(decoded) == 5
    for result, rgb in zip(ort_out, decoded):
        np.testing.assert_array_equal(result.rgb, rgb)
        ref = torch_reference.infer(rgb)
        np.testing.assert_allclose(result.depth, ref.depth, rtol=RTOL)


def test_maps_reproduce_metric_depth(ort_pipeline, synthetic_frames):
    r = ort_pipeline.infer(synthetic_frames[0], maps=True)
    h, w = ort_pipeline.config.preprocess.input_size
    assert r.scale.shape == r.shift.shape == r.relative.shape == (h, w)
    raw = 1.0 / (r.scale * r.relative + r.shift)  # D_m = 1 / (A D_r + B) at network size
    resized = resize_bilinear(raw, FRAME_SIZE)  # then align_corners resize to the frame, clip
    cfg = ort_pipeline.config
    # Sampling positions agree to ~1e-4 px; a wrong resize convention would be off by up to 0.5 px.
    step = max(np.abs(np.diff(raw, axis=0)).max(), np.abs(np.diff(raw, axis=1)).max())
    np.testing.assert_allclose(r.depth, np.clip(resized, cfg.min_depth, cfg.max_depth), rtol=1e-5, atol=1e-4 * step)
    assert ort_pipeline.infer(synthetic_frames[0]).scale is None


def test_scene_changes_the_output(ort_pipeline, synthetic_frames):
    first = ort_pipeline.infer(synthetic_frames[1]).depth
    try:
        bias = ort_pipeline.set_scene(CAPTIONS[1])
        assert bias.shape == (1, ort_pipeline.config.head.in_channels)
        second = ort_pipeline.infer(synthetic_frames[1])
        assert second.caption == CAPTIONS[1]
        assert np.abs(second.depth - first).max() > 1e-4
    finally:
        ort_pipeline.set_scene(CAPTIONS[0])
    np.testing.assert_array_equal(ort_pipeline.infer(synthetic_frames[1]).depth, first)
    with pytest.raises(InputError, match="caption is empty"):
        ort_pipeline.set_scene("   ")


def test_unusable_frame_is_a_clear_error(ort_pipeline):
    with pytest.raises(InputError, match=r"Cannot use a frame of shape \(4, 4, 5\)"):
        ort_pipeline.infer(np.zeros((4, 4, 5), np.uint8))


def test_running_a_bundle_on_ort_imports_no_torch(tiny_bundle, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from tr2m_edge.runtime import DepthPipeline, SyntheticSource
        pipe = DepthPipeline.from_bundle({str(tiny_bundle)!r}, backend="auto")
        pipe.set_scene("a street")
        pipe.infer(np.zeros(({FRAME_SIZE[0]}, {FRAME_SIZE[1]}, 3), np.uint8))
        n = sum(1 for _ in pipe.stream(SyntheticSource(3, {FRAME_SIZE})))
        print(pipe.backend.name, n, "torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ort-cpu", "3", "False"]


@pytest.mark.parametrize(
    "backend, kwargs, error, match",
    [
        ("ort-cuda", {}, BackendError, "Backend ort-cuda is unavailable: onnxruntime has no CUDAExecutionProvider"),
        ("trt", {}, BackendError, "Backend trt is unavailable: TensorRT is not installed"),
        ("torch", {}, BackendError, r"Backend torch is unavailable: it needs --checkpoint"),
        ("tensorflow", {}, BackendError, r"Unknown backend 'tensorflow'. Available: auto, trt"),
        ("ort-cpu", {"precision": "int4"}, ConfigError, "Unknown precision 'int4'"),
        ("ort-cpu", {"precision": "int8"}, Exception, "has no int8 onnx file for 'depth'"),
    ],
)
def test_unavailable_backends_fail_before_the_first_frame(tiny_bundle, backend, kwargs, error, match):
    with pytest.raises(error, match=match):
        DepthPipeline.from_bundle(tiny_bundle, backend=backend, **kwargs)


def test_torch_backend_from_a_bundle_needs_the_matching_checkpoint(tiny_bundle, tiny_checkpoint):
    import dataclasses

    other = dataclasses.replace(tiny_checkpoint, config=tiny_checkpoint.config.replace(max_depth=20.0))
    with pytest.raises(ConfigError, match="differs from the bundle's"):
        DepthPipeline.from_bundle(tiny_bundle, backend="torch", checkpoint=other)


def test_torch_backend_from_a_bundle_runs_on_torch_runners(tiny_bundle, tiny_checkpoint, ort_pipeline):
    from tr2m_edge.runtime.runners.torch_runner import TorchRunner

    with DepthPipeline.from_bundle(tiny_bundle, backend="torch", checkpoint=tiny_checkpoint) as pipe:
        assert pipe.backend.name == "torch" and pipe.backend.reason == "requested"
        assert all(isinstance(r, TorchRunner) for r in pipe.stages.runners.values())
        pipe.set_scene(CAPTIONS[0])
        out = list(pipe.stream(SyntheticSource(2, FRAME_SIZE)))
    assert [r.depth.shape for r in out] == [FRAME_SIZE, FRAME_SIZE]
    # Random encoders are rebuilt from the checkpoint's config alone: the same weights as the bundle's graphs.
    ort_pipeline.set_scene(CAPTIONS[0])
    ref = list(ort_pipeline.stream(SyntheticSource(2, FRAME_SIZE)))
    for a, b in zip(out, ref):
        np.testing.assert_allclose(a.depth, b.depth, rtol=1e-3)


def test_a_cached_scene_name_selects_its_caption(ort_pipeline):
    name = next(n for n, c in ort_pipeline.cached_captions.items() if c == CAPTIONS[0])  # pre-cached at export
    assert name != CAPTIONS[0]
    ort_pipeline.set_scene(name)
    assert ort_pipeline.caption == CAPTIONS[0]


def test_frame_captions_cost_one_bias_call_each_and_an_explicit_caption_wins():
    from tr2m_edge.runtime.stages import CaptionState

    calls = []
    state = CaptionState(lambda c: calls.append(c) or np.full((1, 4), len(c), np.float32), cache_size=2)
    state.follow_frames = True
    for caption in ["a", "bb", "a", "bb", "a"]:
        got, bias = state.get(caption)
        assert got == caption and bias[0, 0] == len(caption)
    assert calls == ["a", "bb"] and state.frame_bias_calls == 2
    state.get("ccc")  # evicts the least recently used ("bb")
    state.get("bb")
    assert calls == ["a", "bb", "ccc", "bb"]
    state.set("x", np.zeros((1, 4), np.float32))  # --text / a caption switch: frames follow it
    assert state.get("a")[0] == "x" and not state.follow_frames
    with pytest.raises(InputError, match="No scene caption set"):
        CaptionState().get("a")  # without a bias function frame captions are not used
