"""Class 8: latency mode bounds the age of what a slow sink shows, not just the queue lengths."""

from __future__ import annotations

import time

import numpy as np
import pytest

from battery_common import CAPTION, FRAME


@pytest.mark.parametrize("plan", ["threads", "device"])
def test_a_slow_sink_gets_the_newest_finished_frame(battery_bundle, plan):
    from tr2m_edge.runtime import DepthPipeline
    from tr2m_edge.runtime.sources import PacedSource
    from tr2m_edge.synthetic import iter_scenes

    frames = [s.rgb for s in iter_scenes(45, size=FRAME, seed=0)]
    source = PacedSource(frames, 30.0)  # a 30 FPS camera
    stale = []
    with DepthPipeline.from_bundle(battery_bundle, "ort-cpu") as pipe:
        pipe.set_scene(CAPTION)
        for r in pipe.stream(source, mode="latency", plan=plan):
            stale.append(source.count - 1 - r.index)  # frames captured after this one, at delivery
            time.sleep(0.1)  # a sink three camera periods slow
        dropped = pipe.executor.counters["dropped"]
    counts = pipe.executor.counters.as_dict()
    # every frame read is delivered or counted dropped, once (whichever boundary dropped it)
    assert counts["read"] == 45 and counts["processed"] + dropped == 45 and len(stale) == counts["processed"], counts
    assert dropped > 20
    # Before: every queue held a stale frame and delivered frames were ~8 sink periods
    # (~24 camera frames) old; now the sink gets what finished last: within about one
    # sink period (3 camera frames) plus one inference pass.
    assert float(np.median(stale)) <= 6, stale
