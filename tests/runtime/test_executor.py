"""The executor's modes and plans on the tiny bundle: order, no loss, drops, drain, errors, guards.

The scheduling tests run both pipelined plans: ``threads`` (one thread per stage) and
``device`` (capture thread + one inference thread, frame N submitted before frame N-1 is
collected) over ONNX Runtime CPU runners (HostFramePlan); the device plan's PyTorch frame
plan (streams, events, double-buffered inputs; stand-ins on the CPU) is run over the
PyTorch reference runners on the CPU.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from rt_common import CAPTIONS, FRAME_SIZE, distinct_frames
from rt_graphs import nonfinite_graphs

from tr2m_edge.config import get_preset
from tr2m_edge.errors import ConfigError, InputError
from tr2m_edge.runtime import ArraySource, Executor, Mode, OrtRunner
from tr2m_edge.runtime.executor import LatestSlot
from tr2m_edge.runtime.sources import FrameSource
from tr2m_edge.runtime.stages import CaptionState, FrameStages


PLANS = ("threads", "device")


@pytest.mark.parametrize("plan", PLANS)
def test_throughput_mode_keeps_every_frame_in_order(ort_pipeline, plan):
    frames = distinct_frames(200)
    results = list(ort_pipeline.stream(ArraySource(frames), mode="throughput", plan=plan))
    assert ort_pipeline.executor.plan == plan
    counters = ort_pipeline.executor.counters.as_dict()
    assert [r.index for r in results] == list(range(200))
    assert counters["read"] == counters["processed"] == 200 and counters["dropped"] == 0
    for r in results:
        np.testing.assert_array_equal(r.rgb, frames[r.index])  # each result belongs to its own frame
    for i in (0, 57, 199):  # and carries that frame's depth (the serial path computes it alone)
        np.testing.assert_array_equal(results[i].depth, ort_pipeline.infer(frames[i]).depth)
    assert set(results[0].stage_ms) == {"preprocess", "depth", "image_encoder", "head", "postprocess"}


@pytest.mark.parametrize("plan", PLANS)
def test_latency_mode_drops_stale_frames_under_a_slow_sink(ort_pipeline, plan):
    frames = distinct_frames(60)
    seen = []
    for r in ort_pipeline.stream(ArraySource(frames, live=True), mode="latency", plan=plan):
        seen.append(r.index)
        time.sleep(0.05)  # a sink slower than the source
    counters = ort_pipeline.executor.counters.as_dict()
    assert counters["read"] == 60
    assert counters["dropped"] > 10
    assert counters["processed"] == len(seen) == 60 - counters["dropped"]
    assert seen == sorted(set(seen))  # newest wins, but never out of order
    assert seen[-1] == 59  # the last frame is never dropped: the pipeline drains


@pytest.mark.parametrize("plan", PLANS)
def test_serial_and_pipelined_give_identical_results(ort_pipeline, plan):
    frames = distinct_frames(6, seed=1)
    serial = [r.depth for r in ort_pipeline.stream(frames, mode="serial")]
    piped = [r.depth for r in ort_pipeline.stream(frames, mode="throughput", plan=plan)]
    assert len(piped) == len(serial) == 6
    for a, b in zip(serial, piped):
        np.testing.assert_array_equal(a, b)


def test_the_serial_plan_in_a_pipelined_mode_runs_one_frame_at_a_time(ort_pipeline):
    frames = distinct_frames(5, seed=2)
    serial = [r.depth for r in ort_pipeline.stream(frames, mode="serial")]
    executor = ort_pipeline.executor_for("latency", plan="serial")
    assert executor.plan == "serial" and "requested" in executor.plan_reason
    results = list(executor.run(ArraySource(frames)))
    assert [r.index for r in results] == list(range(5)) and executor.counters["dropped"] == 0
    for a, b in zip(serial, results):
        np.testing.assert_array_equal(a, b.depth)
    assert set(results[0].stage_ms) >= {"depth", "head"}


@pytest.mark.parametrize("plan", PLANS)
def test_stop_drains_every_captured_frame(ort_pipeline, plan):
    executor = ort_pipeline.executor_for("throughput", queue_size=2, plan=plan)
    out = []
    for r in executor.run(ArraySource(distinct_frames(100))):
        out.append(r.index)
        if len(out) == 3:
            executor.stop()
    counters = executor.counters.as_dict()
    assert 3 <= counters["read"] < 100
    assert out == list(range(counters["read"]))  # read == written, nothing lost in flight


@pytest.mark.parametrize("plan", PLANS)
def test_scene_switch_applies_from_the_next_frames(ort_pipeline, plan):
    frame = distinct_frames(1)[0]
    ref_a = ort_pipeline.infer(frame).depth
    cap_a = ort_pipeline.caption
    executor = ort_pipeline.executor_for("throughput", queue_size=1, plan=plan)
    results, switched_at = [], None
    try:
        for r in executor.run(ArraySource([frame] * 30)):
            results.append(r)
            if r.index == 10:
                ort_pipeline.set_scene("a cobbled street with two vans")
                switched_at = r.index
        ref_b = ort_pipeline.infer(frame).depth
    finally:
        ort_pipeline.set_scene(cap_a)
    first_new = next(r.index for r in results if r.caption != cap_a)
    # Past the head stage at the switch: at most the head, its output queue, postprocess
    # and the result queue (queue_size 1) hold a frame that already read the old bias
    # (device plan: the result queue and the two frames in flight).
    assert switched_at < first_new <= switched_at + 5
    for r in results:
        expected = ref_a if r.index < first_new else ref_b
        np.testing.assert_array_equal(r.depth, expected)
    assert np.abs(ref_a - ref_b).max() > 1e-4


def test_odd_frames_are_converted_or_skipped_and_counted(ort_pipeline):
    good = distinct_frames(1)[0]
    frames = [
        good,
        good[:, :, 0],  # grey -> RGB
        np.dstack([good, np.full(FRAME_SIZE, 255, np.uint8)]),  # RGBA -> RGB
        good[::2, ::2],  # wrong size -> resized
        good.astype(np.float32) / 255.0,  # float in [0, 1] -> uint8
        np.zeros((10, 10, 5), np.uint8),  # unusable -> skipped
        np.zeros((0, 0, 3), np.uint8),  # empty -> skipped
        good,
    ]
    results = list(ort_pipeline.stream(ArraySource(frames)))
    counters = ort_pipeline.executor.counters.as_dict()
    assert counters["read"] == 8 and counters["skipped"] == 2 and counters["converted"] == 4
    assert [r.index for r in results] == [0, 1, 2, 3, 4, 7]
    assert all(r.depth.shape == FRAME_SIZE for r in results)
    np.testing.assert_allclose(results[4].depth, results[0].depth, rtol=1e-3)  # float frame == uint8 frame


def test_nonfinite_depth_is_clamped_and_counted(tmp_path):
    size = (4, 5)
    graphs = nonfinite_graphs(tmp_path, size)
    cfg = get_preset("tiny").replace(min_depth=0.5, max_depth=20.0)
    stages = FrameStages({k: OrtRunner(p) for k, p in graphs.items()}, cfg, size).activate()
    scene = CaptionState()
    scene.set("x", np.zeros((1, 4), np.float32))
    frame = np.full((*size, 3), 104, np.uint8)  # 1 / sqrt(4) = 0.5 m
    frame[0, 0, 0], frame[1, 1, 0], frame[2, 2, 0] = 100, 99, 200  # +inf, NaN, 0.1 m
    results = list(Executor(stages, scene, mode="throughput").run(ArraySource([frame, frame])))
    d = results[0].depth
    assert results[0].nonfinite == 2
    assert d[0, 0] == 20.0 and d[1, 1] == 0.5 and d[2, 2] == 0.5 and d[3, 3] == 0.5
    assert np.isfinite(d).all()
    stages.deactivate()


class _FailingSource(FrameSource):
    def __init__(self, good: np.ndarray, fail_at: int) -> None:
        super().__init__("failing")
        self.good, self.fail_at = good, fail_at

    def read_image(self) -> np.ndarray:
        if self.count == self.fail_at:
            raise InputError("camera unplugged")
        return self.good


@pytest.mark.parametrize("plan", PLANS)
def test_a_failing_source_surfaces_in_the_caller_and_stops_all_threads(ort_pipeline, plan):
    before = threading.active_count()
    got = []
    with pytest.raises(InputError, match="camera unplugged"):
        for r in ort_pipeline.stream(_FailingSource(distinct_frames(1)[0], fail_at=5), plan=plan):
            got.append(r.index)
    assert got == list(range(len(got))) and len(got) <= 5
    assert threading.active_count() == before


@pytest.mark.parametrize("plan", PLANS)
def test_leaving_the_loop_early_stops_all_threads(ort_pipeline, plan):
    before = threading.active_count()
    for r in ort_pipeline.stream(ArraySource(distinct_frames(20)), plan=plan):
        if r.index == 2:
            break
    time.sleep(0.2)
    assert threading.active_count() == before


def test_latest_slot_keeps_only_the_newest():
    slot = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never read: dropped
    assert slot.get(0.01) == 2
    slot.put(3)
    slot.close()
    assert slot.get(0.01) == 3  # pending item first, then the end marker
    assert slot.get(0.01) is not None


def test_unknown_mode_is_rejected():
    with pytest.raises(ConfigError, match="Unknown mode 'fast'. Available: throughput, latency, serial"):
        Mode.parse("fast")


# ---------------------------------------------------------------- plan choice
def test_the_plan_follows_the_runners_device(ort_pipeline, torch_reference, tiny_bundle):
    from tr2m_edge.runtime import TorchRunner, TrtRunner
    from tr2m_edge.runtime.plans.device import frame_plan_for
    from tr2m_edge.runtime.plans.frame import HostFramePlan
    from tr2m_edge.runtime.plans.torch_frame import TorchFramePlan

    assert ort_pipeline.executor_for("throughput").plan == "threads"  # ONNX Runtime on the CPU
    assert ort_pipeline.executor_for("latency").plan == "threads"
    assert ort_pipeline.executor_for("serial", plan="device").plan == "serial"
    assert torch_reference.executor_for("throughput").plan == "threads"  # PyTorch on the CPU
    assert isinstance(frame_plan_for(ort_pipeline.stages), HostFramePlan)
    assert isinstance(frame_plan_for(torch_reference.stages), TorchFramePlan)
    # Where a runner computes is known before activation, so no GPU is needed to check the choice.
    onnx = str(tiny_bundle / "depth.onnx")
    assert OrtRunner(onnx, providers=("cpu",)).device_kind == "cpu"
    assert OrtRunner(onnx, providers=("cuda",)).device_kind == "cuda"
    assert OrtRunner(onnx, providers=("trt", "cuda")).device_kind == "cuda"
    assert TrtRunner(b"not an engine").device_kind == "cuda"
    torch_module = torch_reference.stages.runners["head"].module
    assert TorchRunner(torch_module, [], [], device="cuda:0").device_kind == "cuda"
    gpu = FrameStages({"preprocess": OrtRunner(onnx, providers=("cpu",)), "depth": TrtRunner(b"engine"),
                       "head": OrtRunner(onnx, providers=("cuda",))}, get_preset("tiny"), FRAME_SIZE)
    assert gpu.device_kind == "cuda"
    executor = Executor(gpu, CaptionState(), mode="latency")
    assert executor.plan == "device" and "GPU" in executor.plan_reason
    assert Executor(gpu, CaptionState(), mode="throughput", plan="threads").plan == "threads"
    with pytest.raises(ConfigError, match="Unknown executor plan .fast.. Available: auto, serial, threads, device"):
        Executor(gpu, CaptionState(), plan="fast")


# ---------------------------------------------------------------- device plan over PyTorch runners
def test_device_plan_on_torch_runners_keeps_every_frame_in_order(torch_reference):
    frames = distinct_frames(200, seed=4)
    results = list(torch_reference.stream(ArraySource(frames), mode="throughput", plan="device"))
    assert torch_reference.executor.plan == "device"
    counters = torch_reference.executor.counters.as_dict()
    assert [r.index for r in results] == list(range(200))
    assert counters["read"] == counters["processed"] == 200 and counters["dropped"] == 0
    for r in results:
        np.testing.assert_array_equal(r.rgb, frames[r.index])
    for i in (0, 1, 101, 199):  # double-buffered: neighbours must not leak into each other
        np.testing.assert_array_equal(results[i].depth, torch_reference.infer(frames[i]).depth)
    assert set(results[0].stage_ms) == {"preprocess", "depth", "image_encoder", "head", "postprocess"}


def test_device_plan_on_torch_runners_equals_serial_with_maps(torch_reference):
    frames = distinct_frames(5, seed=2)
    serial = list(torch_reference.stream(frames, mode="serial", maps=True))
    device = list(torch_reference.stream(frames, mode="throughput", plan="device", maps=True))
    assert len(device) == len(serial) == 5
    for a, b in zip(serial, device):
        assert a.index == b.index and a.caption == b.caption
        for name in ("depth", "scale", "shift", "relative"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_device_plan_on_torch_runners_drops_in_latency_mode_and_drains(torch_reference):
    seen = []
    for r in torch_reference.stream(ArraySource(distinct_frames(40), live=True), mode="latency", plan="device"):
        seen.append(r.index)
        time.sleep(0.05)  # a sink slower than the source
    counters = torch_reference.executor.counters.as_dict()
    assert counters["read"] == 40 and counters["dropped"] > 5
    assert counters["processed"] == len(seen) == 40 - counters["dropped"]
    assert seen == sorted(set(seen)) and seen[-1] == 39
    executor = torch_reference.executor_for("throughput", plan="device")
    out = []
    for r in executor.run(ArraySource(distinct_frames(60))):
        out.append(r.index)
        if len(out) == 2:
            executor.stop()
    assert 2 <= executor.counters["read"] < 60
    assert out == list(range(executor.counters["read"]))  # every captured frame came out


def test_device_plan_on_torch_runners_switches_scenes_mid_stream(torch_reference):
    frame = distinct_frames(1, seed=5)[0]
    cap_a = torch_reference.caption
    ref_a = torch_reference.infer(frame, maps=True)
    results = []
    try:
        executor = torch_reference.executor_for("throughput", queue_size=1, plan="device")
        for r in executor.run(ArraySource([frame] * 16)):
            results.append(r)
            if r.index == 5:
                torch_reference.set_scene(CAPTIONS[1])
        ref_b = torch_reference.infer(frame, maps=True)
    finally:
        torch_reference.set_scene(cap_a)
    assert np.abs(ref_a.depth - ref_b.depth).max() > 1e-4  # the captions give different depth
    first_new = next(r.index for r in results if r.caption != cap_a)
    assert 5 < first_new <= 9  # the result queue and the two frames in flight had read the old bias
    for r in results:
        np.testing.assert_array_equal(r.depth, (ref_a if r.index < first_new else ref_b).depth)
    # The device copy of the bias is refreshed on a switch back as well.
    back = list(torch_reference.stream([frame], mode="throughput", plan="device", maps=True))[0]
    np.testing.assert_array_equal(back.scale, ref_a.scale)


class _HandshakeSource(FrameSource):
    """Frame k is read only once frame k-1 has come out of the pipeline.

    An executor that keeps a finished frame until the next one arrives waits for ever
    here; each such wait is cut after ``timeout`` seconds and recorded in ``stalled``.
    """

    live = True

    def __init__(self, frames: list[np.ndarray], timeout: float = 10.0) -> None:
        super().__init__("handshake")
        self.frames = frames
        self.delivered = [threading.Event() for _ in frames]
        self.timeout = timeout
        self.stalled: list[int] = []

    def read_image(self) -> np.ndarray | None:
        i = self.count
        if i >= len(self.frames):
            return None
        if i > 0 and not self.delivered[i - 1].wait(self.timeout):
            self.stalled.append(i)
        return self.frames[i]


@pytest.mark.parametrize("mode", ["latency", "throughput"])
@pytest.mark.parametrize("pipeline", ["ort_pipeline", "torch_reference"])
def test_device_plan_hands_out_a_finished_frame_without_waiting_for_the_next(request, pipeline, mode):
    pipe = request.getfixturevalue(pipeline)
    source = _HandshakeSource(distinct_frames(5))
    seen = []
    for r in pipe.stream(source, mode=mode, plan="device"):
        seen.append(r.index)
        source.delivered[r.index].set()
    assert source.stalled == []
    assert seen == list(range(5)) and pipe.executor.counters["dropped"] == 0
