"""``--stats``: one console line per second: FPS, per-stage milliseconds, latency, drops."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable

from rich.console import Console

from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sinks.base import Sink

STAGE_ORDER = ("preprocess", "depth", "image_encoder", "head", "postprocess")
SHORT = {"preprocess": "pre", "depth": "depth", "image_encoder": "image", "head": "head", "postprocess": "post"}


class StatsSink(Sink):
    """Prints a line every ``interval`` seconds; ``counters`` returns the run's counters."""

    name = "stats"

    def __init__(self, counters: Callable[[], dict[str, int]], *, interval: float = 1.0,
                 console: Console | None = None) -> None:
        self.counters = counters
        self.interval = interval
        self.console = console or Console(stderr=True, highlight=False)
        self.lines: list[str] = []
        self._reset(time.perf_counter())

    def _reset(self, now: float) -> None:
        self._start = now
        self._frames = 0
        self._stage: dict[str, float] = defaultdict(float)
        self._latency = 0.0

    def write(self, result: MetricDepth) -> None:
        now = time.perf_counter()
        self._frames += 1
        self._latency += result.latency_ms
        for k, v in result.stage_ms.items():
            self._stage[k] += v
        if now - self._start >= self.interval:
            self.emit(now)

    def emit(self, now: float | None = None) -> str:
        """Print (and return) the line for the frames since the last one."""
        now = time.perf_counter() if now is None else now
        n = max(self._frames, 1)
        fps = self._frames / max(now - self._start, 1e-9)
        stages = " ".join(f"{SHORT[k]} {self._stage[k] / n:.1f}" for k in STAGE_ORDER if k in self._stage)
        c = self.counters()
        line = (f"{fps:6.1f} FPS | ms: {stages} | latency {self._latency / n:.1f} ms | "
                f"read {c.get('read', 0)} dropped {c.get('dropped', 0)} skipped {c.get('skipped', 0)} "
                f"converted {c.get('converted', 0)} nonfinite {c.get('nonfinite_values', 0)}")
        self.console.print(line)
        self.lines.append(line)
        self._reset(now)
        return line

    def close(self) -> None:
        if self._frames:
            self.emit()
