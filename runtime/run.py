"""``tr2m-edge run``'s library function: stream a source through a pipeline into sinks.

Ctrl-C (SIGINT) stops capturing and drains: every frame already captured is still
processed and written, then every sink is closed (videos finalised, files complete). A
second Ctrl-C aborts at once (sinks are still closed). The same happens at the end of
the stream and when a sink asks to stop (the window's ``q`` key).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from tr2m_edge.runtime.executor import Executor, Mode
from tr2m_edge.runtime.pipeline import DepthPipeline
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sinks.base import Sink
from tr2m_edge.runtime.sources import FrameSource

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What one run did."""

    backend: str
    mode: str
    frames_read: int = 0
    frames_written: int = 0
    dropped: int = 0
    skipped: int = 0
    converted: int = 0
    nonfinite_values: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    captions: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames_written / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = round(self.fps, 3)
        return d


class _SigintDrain:
    """First SIGINT: drain (executor.stop); second: KeyboardInterrupt. Main thread only."""

    def __init__(self, executor: Executor, on_first: Callable[[], None]) -> None:
        self.executor = executor
        self.on_first = on_first
        self.previous: Any = None
        self.fired = False

    def __enter__(self) -> "_SigintDrain":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.fired:
            raise KeyboardInterrupt
        self.fired = True
        self.on_first()
        self.executor.stop()

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def run_stream(
    pipeline: DepthPipeline, source: FrameSource, sinks: Sequence[Sink], *,
    mode: str | Mode = Mode.THROUGHPUT, max_frames: int | None = None, queue_size: int = 2,
    maps: bool = False, handle_sigint: bool = True, on_result: Callable[[MetricDepth], None] | None = None,
) -> RunSummary:
    """Run ``source`` through ``pipeline`` into ``sinks``; always closes the sinks.

    Args:
        mode: ``throughput`` (no drops, order kept), ``latency`` (newest frame wins) or ``serial``.
        max_frames: stop after reading this many frames.
        handle_sigint: install the drain-on-Ctrl-C handler (main thread only).
        on_result: called per result after the sinks (progress displays, tests).
    """
    if max_frames is not None:
        source.limit = max_frames
    executor = pipeline.executor_for(mode, queue_size=queue_size, maps=maps)
    summary = RunSummary(backend=pipeline.backend.name, mode=Mode.parse(mode).value)
    start = time.perf_counter()
    drain = _SigintDrain(executor, lambda: log.warning("Ctrl-C: stopping capture and draining the pipeline "
                                                        "(press Ctrl-C again to abort)"))
    captions: list[str] = []
    results = executor.run(source)
    try:
        with (drain if handle_sigint else _Nothing()):
            for result in results:
                for sink in sinks:
                    sink.write(result)
                summary.frames_written += 1
                if not captions or captions[-1] != result.caption:
                    captions.append(result.caption)
                if on_result is not None:
                    on_result(result)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        results.close()  # stops and joins the pipeline threads if we left early
        summary.interrupted = summary.interrupted or drain.fired
        errors = []
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - close the others, then report
                errors.append(exc)
        summary.seconds = time.perf_counter() - start
        counters = executor.counters.as_dict()
        summary.frames_read = counters["read"]
        summary.dropped = counters["dropped"]
        summary.skipped = counters["skipped"]
        summary.converted = counters["converted"]
        summary.nonfinite_values = counters["nonfinite_values"]
        summary.captions = captions
        if errors and sys.exc_info()[0] is None:
            raise errors[0]
    return summary


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
