"""The serial plan: every stage in turn in the caller's thread (the baseline for comparison)."""

from __future__ import annotations

from typing import Iterator

from tr2m_edge.runtime.plans.base import END, PlanRun
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sources import FrameSource


def run(plan: PlanRun, source: FrameSource) -> Iterator[MetricDepth]:
    """Capture, run the stages in their serial order, postprocess; one frame at a time."""
    while not plan.stop.is_set():
        pkt = plan.capture(source)
        if pkt is END:
            return
        if pkt is None:
            continue
        pkt.caption, bias = plan.captions.get(pkt.frame.caption)
        pkt.out, pkt.dep = plan.stages.run_frame(pkt.frame.rgb, bias, pkt.frame.rgb.shape[:2], timings=pkt.timings)
        yield plan.deliver(plan.finish(pkt))
