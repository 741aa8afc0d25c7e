"""The executor: runs the stages over a frame source in one of three modes.

Modes (what happens to frames):
    ``throughput``: nothing is dropped and order is kept (files); the capture blocks
        when the pipeline is full.
    ``latency``: newest frame wins (live sources); a frame still waiting when a newer
        one arrives is dropped and counted, so latency stays bounded by the pipeline depth.
    ``serial``: every stage in turn in the caller's thread (the baseline for comparison).

How the pipelined modes use the machine is the plan's business (:mod:`.plans`):
``threads`` for CPU runners, ``device`` for GPU runners, picked from the runners' device.
In every plan results come back in order, the sinks run in the caller's thread, and
:meth:`Executor.stop` drains: capture stops, every frame already captured still comes
out, then the iterator ends.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterator

from tr2m_edge.runtime.frames import FrameConformer
from tr2m_edge.runtime.plans import PLANS, choose_plan
from tr2m_edge.runtime.plans.base import LatestSlot, Mode, PlanRun
from tr2m_edge.runtime.results import MetricDepth, RunCounters
from tr2m_edge.runtime.sources import FrameSource
from tr2m_edge.runtime.stages import CaptionState, FrameStages

__all__ = ["Executor", "LatestSlot", "Mode", "choose_plan"]

log = logging.getLogger(__name__)


class Executor:
    """Runs :class:`FrameStages` over a :class:`FrameSource` in one of the three modes.

    Args:
        stages: activated stages.
        captions: the caption state the head stage reads per frame.
        mode: ``throughput``, ``latency`` or ``serial``.
        queue_size: capacity of each inter-stage queue (throughput mode).
        keep_maps: attach A, B and D_r to every result.
        conformer: frame guard (sizes/channels); a default one for the stages' frame size.
        plan: ``auto`` (from the runners' device), ``threads`` or ``device``; the one
            used is :attr:`plan` (``serial`` in serial mode), with :attr:`plan_reason`.
    """

    def __init__(self, stages: FrameStages, captions: CaptionState, *, mode: str | Mode = Mode.THROUGHPUT,
                 queue_size: int = 2, keep_maps: bool = False, conformer: FrameConformer | None = None,
                 plan: str = "auto") -> None:
        self.stages = stages
        self.captions = captions
        self.mode = Mode.parse(mode)
        self.plan, self.plan_reason = choose_plan(self.mode, stages, plan)
        self.queue_size = max(1, int(queue_size))
        self.keep_maps = keep_maps
        self.conformer = conformer or FrameConformer(stages.frame_size)
        self.counters = RunCounters()
        self._stop = threading.Event()
        self._source: FrameSource | None = None

    def stop(self) -> None:
        """Stop capturing; frames already captured still come out (drain)."""
        self._stop.set()
        if self._source is not None:
            self._source.request_stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, source: FrameSource) -> Iterator[MetricDepth]:
        """Open ``source`` and yield one :class:`MetricDepth` per processed frame, in order."""
        self._source = source
        self._stop.clear()
        run = PlanRun(self.stages, self.captions, self.mode, self.queue_size, self.keep_maps, self.conformer,
                      self.counters, self._stop)
        source.open()
        log.info("executor: %s mode, %s plan (%s)", self.mode.value, self.plan, self.plan_reason)
        try:
            yield from PLANS[self.plan](run, source)
        finally:
            source.close()
