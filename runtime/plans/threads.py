"""The thread plan (CPU runners): one host thread per stage, joined by bounded queues.

The depth and image-encoder stages run concurrently on the same preprocessed frame (ONNX
Runtime releases the GIL while it computes; sessions split the cores). Results come back
in order; postprocess runs in its own thread, the sinks in the caller's. In latency mode
every boundary is a newest-frame-wins slot and the head joins the two branches on the
newest frame both have.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from tr2m_edge.runtime.plans.base import END, Packet, PlanRun
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sources import FrameSource


def _matched(plan: PlanRun, inputs: list[Any]) -> list[Any]:
    """One item from each input; in latency mode the branches may have dropped different
    frames, so the older of two packets is dropped until both hold the same frame."""
    items = [plan.get(q) for q in inputs]
    while len(items) == 2 and END not in items and items[0] is not items[1]:
        older = 0 if items[0].frame.index < items[1].frame.index else 1
        plan.drop(items[older])
        items[older] = plan.get(inputs[older])
    return items


def _stage_loop(plan: PlanRun, fn: Callable[..., Any], inputs: list[Any], outputs: list[Any]) -> None:
    while True:
        items = _matched(plan, inputs) if plan.latency else [plan.get(q) for q in inputs]
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

    first, results, to_depth, depth_out, to_finish = (plan.boundary() for _ in range(5))
    stages: list[tuple[str, Callable[..., Any], list[Any], list[Any]]]
    if st.has_image_encoder:
        to_image, image_out = plan.boundary(), plan.boundary()
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
