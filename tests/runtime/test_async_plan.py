"""The issue-and-wait frame plan (TensorRT, ONNX Runtime on CUDA), run here on CPU runners that
declare it: the same code path, with each runner's worker thread standing in for its stream."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rt_common import CAPTIONS, FRAME_SIZE, distinct_frames

from tr2m_edge.runtime.executor import Executor
from tr2m_edge.runtime.plans.async_frame import AsyncFramePlan
from tr2m_edge.runtime.plans.device import frame_plan_for
from tr2m_edge.runtime.plans.frame import HostFramePlan
from tr2m_edge.runtime.runners import OrtRunner
from tr2m_edge.runtime.sources import ArraySource
from tr2m_edge.runtime.stages import CaptionState, FrameStages


class AsyncOrt(OrtRunner):
    """An ONNX Runtime CPU runner that declares the async frame plan (as a GPU runner does)."""

    frame_plan = "async"  # type: ignore[assignment]
    delay = 0.0

    def infer_impl(self, feed):
        out = super().infer_impl(feed)
        if self.delay:
            time.sleep(self.delay)  # a graph that computes long enough for overlap to be visible
        return out


def _stages(bundle_path, kind, delay=0.0):
    from tr2m_edge.bundle import open_bundle

    bundle = open_bundle(bundle_path)
    runners = {}
    for comp in ("preprocess", "depth", "image_encoder", "head"):
        runner = kind(bundle.path(bundle.require(comp)), intra_op_threads=1, name=comp)
        if isinstance(runner, AsyncOrt) and comp in ("depth", "image_encoder"):
            runner.delay = delay
        runners[comp] = runner
    return FrameStages(runners, bundle.config, bundle.manifest.frame_size).activate()


@pytest.fixture(scope="module")
def bias(tiny_bundle):
    from tr2m_edge.runtime.scene_bias import SceneBiasRunner

    return SceneBiasRunner(tiny_bundle)([CAPTIONS[0]])


def test_async_runners_get_the_async_plan_and_equal_the_host_plan(tiny_bundle, bias):
    stages = _stages(tiny_bundle, AsyncOrt)
    host = _stages(tiny_bundle, OrtRunner)
    plan = frame_plan_for(stages)
    assert isinstance(plan, AsyncFramePlan) and plan.asynchronous
    assert isinstance(frame_plan_for(host), HostFramePlan)
    frames = distinct_frames(3)
    flights = [plan.submit(f, bias, FRAME_SIZE, keep_maps=True) for f in frames[:2]]  # two frames in flight
    got = [f.wait() for f in flights]
    for frame, out in zip(frames, got):
        ref = HostFramePlan(host).submit(frame, bias, FRAME_SIZE, True).wait()
        for name in ("depth", "scale", "shift"):
            np.testing.assert_array_equal(out.out[name], ref.out[name])
        np.testing.assert_array_equal(out.dep["relative_depth"], ref.dep["relative_depth"])
        assert set(out.stage_ms) == {"preprocess", "depth", "image_encoder", "head"}
    assert not np.array_equal(got[0].out["depth"], got[1].out["depth"])
    stages.deactivate()
    host.deactivate()


def test_depth_and_image_encoder_overlap(tiny_bundle, bias):
    stages = _stages(tiny_bundle, AsyncOrt, delay=0.2)
    flight = frame_plan_for(stages).submit(distinct_frames(1)[0], bias, FRAME_SIZE, keep_maps=False)
    flight.wait()
    dep, img = flight.dep, flight.img
    assert max(dep.start, img.start) < min(dep.end, img.end)  # both computed at the same time
    assert flight.head.start >= max(dep.end, img.end)  # the head waited for both
    stages.deactivate()


@pytest.mark.parametrize("mode", ["throughput", "latency"])
def test_the_device_plan_runs_async_runners_in_order(tiny_bundle, mode):
    stages = _stages(tiny_bundle, AsyncOrt)
    captions = CaptionState()
    from tr2m_edge.runtime.scene_bias import SceneBiasRunner

    captions.set(CAPTIONS[0], SceneBiasRunner(tiny_bundle)([CAPTIONS[0]]))
    executor = Executor(stages, captions, mode=mode, plan="device")
    frames = distinct_frames(12)
    results = list(executor.run(ArraySource(frames, live=mode == "latency")))
    indices = [r.index for r in results]
    assert indices == sorted(set(indices)) and indices[-1] == 11
    if mode == "throughput":
        assert indices == list(range(12)) and executor.counters["dropped"] == 0
    assert all("launch" in r.stage_ms for r in results)  # issued asynchronously, then collected
    stages.deactivate()


def test_an_error_in_an_issued_call_reaches_the_caller(tiny_bundle, bias):
    stages = _stages(tiny_bundle, AsyncOrt)
    plan = frame_plan_for(stages)
    bad = np.zeros((5, 5, 3), np.uint8)  # the fixed-frame preprocess graph refuses it
    with pytest.raises(Exception, match="preprocess"):
        plan.submit(bad, bias, (5, 5), keep_maps=False).wait()
    stages.deactivate()
