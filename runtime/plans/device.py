"""The device plan (GPU runners): a capture thread and ONE inference thread.

GPU launches are asynchronous, so a thread per stage only fights over the GIL. The
inference thread issues all of frame N's GPU work through the runners' frame plan
(:func:`frame_plan_for`: double-buffered device inputs, two
streams joined by events, async D2H into pinned memory) and only then waits for frame
N-1, so the host prepares frame N+1 while the GPU computes frame N. When no new frame is
waiting it completes the pending one first, so latency mode does not hold a finished
frame back for a camera period. Postprocess and the sinks run in the caller's thread.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from typing import Any, Iterator

from tr2m_edge.runtime.plans.base import END, Aborted, Packet, PlanRun
from tr2m_edge.errors import BackendError
from tr2m_edge.runtime.plans.async_frame import AsyncFramePlan
from tr2m_edge.runtime.plans.frame import FramePlan, HostFramePlan, InFlight
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sources import FrameSource
from tr2m_edge.runtime.stages import FrameStages


def frame_plan_for(stages: FrameStages) -> FramePlan:
    """A fresh frame plan over these (activated) runners, as their class declares.

    Every runner names its frame plan (:attr:`~tr2m_edge.runtime.runners.base.Runner.frame_plan`):
    ``torch`` runners that share one device get the two-stream
    :class:`~tr2m_edge.runtime.plans.torch_frame.TorchFramePlan`; a set with ``async``
    runners (TensorRT, ONNX Runtime on CUDA) the issue-and-wait
    :class:`~tr2m_edge.runtime.plans.async_frame.AsyncFramePlan` (depth and image encoder
    overlap); CPU runners the stage-by-stage :class:`HostFramePlan`.
    """
    wanted = {r.frame_plan for r in stages.runners.values()}
    unknown = wanted - {"host", "torch", "async"}
    if unknown:
        raise BackendError(f"Unknown frame plan(s) {sorted(unknown)} declared by the runners.")
    if wanted == {"torch"}:
        from tr2m_edge.runtime.plans.torch_frame import TorchFramePlan

        if TorchFramePlan.supports(stages):
            return TorchFramePlan(stages)
    elif "async" in wanted and "torch" not in wanted:  # every runner can issue; a host one among them just computes
        return AsyncFramePlan(stages)
    return HostFramePlan(stages)


def _submit(plan: PlanRun, pkt: Packet, frames: FramePlan) -> tuple[Packet, InFlight]:
    pkt.caption, bias = plan.captions.get(pkt.frame.caption)
    start = time.perf_counter()
    flight = frames.submit(pkt.frame.rgb, bias, pkt.frame.rgb.shape[:2], plan.keep_maps)
    if frames.asynchronous:
        pkt.timings["launch"] = (time.perf_counter() - start) * 1e3  # host time to issue the frame
    return pkt, flight


def _complete(plan: PlanRun, item: tuple[Packet, InFlight], results: Any) -> None:
    pkt, flight = item
    outputs = flight.wait()
    pkt.out, pkt.dep = outputs.out, outputs.dep
    pkt.timings.update(outputs.stage_ms)
    plan.put(results, pkt)


def _infer_loop(plan: PlanRun, first: Any, results: Any, frames: FramePlan) -> None:
    """Submit frame N, then complete frame N-1; with no frame waiting, complete the pending one first."""
    pending: deque[tuple[Packet, InFlight]] = deque()
    while True:
        if pending:
            if plan.abort.is_set():
                raise Aborted
            try:
                item = first.get(timeout=0)
            except queue.Empty:
                _complete(plan, pending.popleft(), results)
                continue
        else:
            item = plan.get(first)
        if item is END:
            break
        pending.append(_submit(plan, item, frames))
        while len(pending) >= frames.slots:
            _complete(plan, pending.popleft(), results)
    while pending:
        _complete(plan, pending.popleft(), results)
    plan.put(results, END)


def run(plan: PlanRun, source: FrameSource) -> Iterator[MetricDepth]:
    """Capture thread + inference thread over the runners' frame plan; postprocess here."""
    first, results = plan.boundary(), plan.boundary()
    frames = frame_plan_for(plan.stages)
    threads = [plan.thread("capture", plan.capture_loop, source, first),
               plan.thread("infer", _infer_loop, plan, first, results, frames)]
    try:
        yield from plan.drive(source, threads, results, plan.finish)
    finally:
        frames.close()
