"""The thread plan (CPU runners): one host thread per stage, joined by bounded queues.

The depth and image-encoder stages run concurrently on the same preprocessed frame (ONNX
Runtime releases the GIL while it computes; sessions split the cores). Results come back
in order; postprocess runs in its own thread, the sinks in the caller's.
"""

from __future__ import annotations

import queue
from typing import Any, Callable, Iterator

from tr2m_edge.runtime.plans.base import END, Packet, PlanRun
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sources import FrameSource


def _stage_loop(plan: PlanRun, fn: Callable[..., Any], inputs: list[Any], outputs: list[queue.Queue]) -> None:
    while True:
        items = [plan.get(q) for q in inputs]
        if any(item is END for item in items):
            for q in outputs:
                plan.put(q, END)
            return
        value = fn(*items)
        for q in outputs:
            plan.put(q, value)


def run(plan: PlanRun, source: FrameSource) -> Iterator[MetricDepth]:
    """Capture thread -> preprocess -> {depth, image encoder} -> head -> postprocess threads."""
    st = plan.stages

    def preprocess(pkt: Packet) -> Packet:
        pkt.pre = st.preprocess(pkt.frame.rgb, pkt.timings)
        return pkt

    def depth(pkt: Packet) -> Packet:
        pkt.dep = st.depth(pkt.pre, pkt.timings)
        return pkt

    def image(pkt: Packet) -> Packet:
        pkt.img = st.image(pkt.pre, pkt.timings)
        return pkt

    def head(pkt: Packet, other: Packet | None = None) -> Packet:
        if other is not None and other is not pkt:
            raise RuntimeError("pipeline out of order: depth and image-encoder stages disagree")  # a bug, not user input
        pkt.caption, bias = plan.captions.get(pkt.frame.caption)
        pkt.out = st.head(pkt.dep, pkt.img, bias, pkt.frame.rgb.shape[:2], pkt.timings)
        pkt.pre = {}  # free the input tensors early
        return pkt

    size = 1 if plan.latency else plan.queue_size
    first = plan.first_queue()
    to_depth, depth_out, to_finish, results = (queue.Queue(size) for _ in range(4))
    stages: list[tuple[str, Callable[..., Any], list[Any], list[queue.Queue]]]
    if st.has_image_encoder:
        to_image: queue.Queue = queue.Queue(size)
        image_out: queue.Queue = queue.Queue(size)
        stages = [
            ("preprocess", preprocess, [first], [to_depth, to_image]),
            ("depth", depth, [to_depth], [depth_out]),
            ("image_encoder", image, [to_image], [image_out]),
            ("head", head, [depth_out, image_out], [to_finish]),
        ]
    else:
        stages = [
            ("preprocess", preprocess, [first], [to_depth]),
            ("depth", depth, [to_depth], [depth_out]),
            ("head", head, [depth_out], [to_finish]),
        ]
    stages.append(("postprocess", plan.finish, [to_finish], [results]))
    threads = [plan.thread("capture", plan.capture_loop, source, first)]
    threads += [plan.thread(name, _stage_loop, plan, fn, ins, outs) for name, fn, ins, outs in stages]
    yield from plan.drive(source, threads, results, lambda item: item)
