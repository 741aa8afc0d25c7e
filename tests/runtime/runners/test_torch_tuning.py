"""The torch backend's measured settings: candidates, trials, agreement with fp32, the choice, the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tr2m_edge.config import get_preset
from tr2m_edge.errors import BackendError
from tr2m_edge.model.tr2m import build_model
from tr2m_edge.runtime.runners import torch_tuning
from tr2m_edge.runtime.runners.torch_runner import TorchRunner
from tr2m_edge.runtime.runners.torch_tuning import TorchSettings, candidates, tune

FRAME = (70, 98)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(get_preset("tiny")).eval()


def _bias(model):
    with torch.no_grad():
        return model.scene_bias(model.encode_text(["a room"])).float()


def test_candidates_cover_dtype_layout_compile_and_graphs_on_cuda():
    gpu = candidates("cuda")
    labels = {s.label for s in gpu}
    assert "fp32" in labels  # the reference is a candidate too
    for dtype in ("fp16", "bf16"):
        assert {f"{dtype}+cuda-graph", f"{dtype}+channels-last+cuda-graph"} <= labels
    assert not any(s.compile for s in gpu)  # compile is tried on each component's winner only
    assert not any(s.cuda_graph for s in candidates("cuda", fixed_size=False))  # graphs need fixed shapes
    assert [s.label for s in candidates("cpu")] == ["fp32", "fp32+channels-last"]


def test_every_component_is_measured_and_the_fastest_agreeing_setting_is_chosen(model):
    torch_tuning._MEASURED.clear()
    chosen, report = tune(model, FRAME, "cpu", bias=_bias(model), repeats=2)
    assert set(report.trials) == {"preprocess", "depth", "image_encoder", "head"} == set(chosen)
    for name, trials in report.trials.items():
        assert [t.setting for t in trials] == ["fp32", "fp32+channels-last"]
        assert all(t.ok and t.ms > 0 and t.rel_error < 1e-5 for t in trials), trials
        fastest = min(trials, key=lambda t: t.ms)
        assert report.chosen[name] == chosen[name].label == fastest.setting
    assert "sdpa" in report.attention
    again = tune(model, FRAME, "cpu", bias=_bias(model), repeats=2)
    assert again[1] is report  # measured once per process for this architecture and device


def test_settings_that_fail_or_disagree_are_never_chosen(model):
    torch_tuning._MEASURED.clear()
    settings = [TorchSettings(), TorchSettings("fp16"), TorchSettings(channels_last=True)]
    chosen, report = tune(model, FRAME, "cpu", bias=_bias(model), settings=settings, repeats=1)
    for name, trials in report.trials.items():
        half = [t for t in trials if t.setting == "fp16"]
        if name != "preprocess":  # preprocess is never cast
            assert half and not half[0].ok and "needs a CUDA device" in half[0].note
        assert chosen[name].dtype == "fp32"
    torch_tuning._MEASURED.clear()
    chosen, report = tune(model, FRAME, "cpu", bias=_bias(model), settings=settings[2:], repeats=1, tolerance=-1.0)
    assert all(not t.ok and "differs from fp32" in t.note for ts in report.trials.values() for t in ts)
    assert all(s == TorchSettings() for s in chosen.values())  # nothing agreed: fp32 eager
    torch_tuning._MEASURED.clear()


def test_a_tuned_pipeline_gives_the_untuned_depth(model):
    from tr2m_edge.runtime import DepthPipeline
    from tr2m_edge.synthetic import iter_scenes

    frames = [s.rgb for s in iter_scenes(3, size=FRAME, seed=4)]
    with DepthPipeline.from_model(model, frame_size=FRAME) as plain:
        plain.set_scene("a room")
        want = [r.depth for r in plain.stream(frames, mode="serial")]
        assert plain.tuning is None
    torch_tuning._MEASURED.clear()
    with DepthPipeline.from_model(model, frame_size=FRAME, tune=True) as tuned:
        tuned.set_scene("a room")
        got = [r.depth for r in tuned.stream(frames, mode="throughput")]
        report = tuned.tuning
        runners = tuned.stages.runners
    assert report is not None and set(report.chosen) == set(runners)
    for name, r in runners.items():
        assert (r.channels_last, r.dtype) == (report.chosen[name] == "fp32+channels-last", "fp32")
    for a, b in zip(want, got):  # channels-last reorders fp32 sums: ~1e-5 relative, nothing more
        np.testing.assert_allclose(b, a, rtol=1e-4)


def test_runner_dtype_and_layout_options_are_checked():
    module = torch.nn.Conv2d(3, 4, 3)
    with pytest.raises(BackendError, match="bf16 needs a CUDA device"):
        TorchRunner(module, [], [], dtype="bf16").activate()
    with pytest.raises(BackendError, match="unknown dtype 'int4'. Available: fp32, fp16, bf16"):
        TorchRunner(module, [], [], dtype="int4")
    from tr2m_edge.contract import TensorSpec

    x = torch.randn(1, 3, 8, 8)
    want = module(x)
    seen = []
    module.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["input"].is_contiguous(memory_format=torch.channels_last)),
        with_kwargs=True)
    runner = TorchRunner(module, [TensorSpec("input", "float32", (1, 3, 8, 8))], [TensorSpec("y", "float32", (1, 4, 6, 6))],
                         channels_last=True, host_outputs=False).activate()
    out = runner.run_async({"input": x})["y"]
    assert seen == [True] and module.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, want)
    runner.deactivate()


@pytest.mark.slow  # inductor's CPU build takes ~30 s of compile time even for one convolution
def test_a_compiled_runner_gives_the_eager_outputs():
    from tr2m_edge.contract import TensorSpec

    module = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    runner = TorchRunner(module, [TensorSpec("input", "float32", (1, 3, 8, 8))], [TensorSpec("y", "float32", (1, 4, 6, 6))],
                         compile=True, host_outputs=False).activate()
    torch.testing.assert_close(runner.run_async({"input": x})["y"], module(x))
    assert runner._forward is not module  # the compiled wrapper ran
    runner.deactivate()


def test_a_caption_reaches_a_half_precision_head():
    """On a GPU an fp16 / bf16 head runner casts the shared head module; captions must still embed."""
    from tr2m_edge.runtime import DepthPipeline

    torch.manual_seed(0)
    model = build_model(get_preset("tiny")).eval()
    with DepthPipeline.from_model(model, frame_size=FRAME) as pipe:
        model.head.to(torch.bfloat16)  # what an activated bf16 head runner does to the shared module
        pipe.set_scene("a loading dock")
        assert pipe.caption == "a loading dock"
