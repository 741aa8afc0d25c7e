"""What every execution plan shares: modes, packets, queues, and one run's state.

A plan (:mod:`.serial`, :mod:`.threads`, :mod:`.device`) is a function
``run(run: PlanRun, source) -> Iterator[MetricDepth]``. :class:`PlanRun` holds one run's
stages, caption state, counters and stop/abort flags, and the steps every plan needs:
capture (read + conform one frame), the capture thread, queue get/put that notice an
abort, driving worker threads while yielding results in the caller's thread, and the
postprocess step.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from tr2m_edge.errors import ConfigError
from tr2m_edge.runtime.frames import Frame, FrameConformer
from tr2m_edge.runtime.results import MetricDepth, RunCounters
from tr2m_edge.runtime.sources import FrameSource
from tr2m_edge.runtime.stages import CaptionState, FrameStages

log = logging.getLogger(__name__)
POLL = 0.05  # seconds between checks of the abort flag while blocked on a queue
JOIN_TIMEOUT = 10.0


class Mode(str, enum.Enum):
    """How frames flow through the stages."""

    THROUGHPUT = "throughput"
    LATENCY = "latency"
    SERIAL = "serial"

    @classmethod
    def parse(cls, value: "str | Mode") -> "Mode":
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"Unknown mode '{value}'. Available: {', '.join(m.value for m in cls)}.") from None


class _End:
    """End-of-stream marker passed through every queue."""


END = _End()


class Aborted(Exception):
    """Raised inside workers when the run is aborted (error or consumer gone)."""


@dataclass
class Packet:
    """One frame on its way through the stages."""

    frame: Frame
    pre: dict[str, Any] = field(default_factory=dict)
    dep: dict[str, Any] = field(default_factory=dict)
    img: dict[str, Any] = field(default_factory=dict)
    out: dict[str, Any] = field(default_factory=dict)
    caption: str = ""
    timings: dict[str, float] = field(default_factory=dict)


class LatestSlot:
    """A one-item mailbox where a new item replaces an unread one (newest frame wins)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._has = False
        self._closed = False

    def put(self, item: Any) -> bool:
        """Store ``item``; True when it replaced an unread item (a dropped frame)."""
        return self.swap(item)[0]

    def swap(self, item: Any) -> tuple[bool, Any]:
        """Store ``item``; (True, the replaced item) when an unread one was replaced, else (False, None)."""
        with self._cond:
            replaced, old = self._has, self._item
            self._item, self._has = item, True
            self._cond.notify()
            return replaced, (old if replaced else None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def get(self, timeout: float) -> Any:
        with self._cond:
            if not self._has and not self._closed:
                self._cond.wait(timeout)
            if self._has:
                item, self._item, self._has = self._item, None, False
                return item
            if self._closed:
                return END
            raise queue.Empty


class PlanRun:
    """The state of one executor run, shared by the plan's threads.

    Args:
        stages: activated stages.
        captions: the caption state the head stage reads per frame.
        mode: throughput, latency or serial.
        queue_size: capacity of each inter-stage queue (throughput mode).
        keep_maps: attach A, B and D_r to every result.
        conformer: the frame guard (sizes/channels).
        counters: the run's frame counters.
        stop: set to stop capturing (drain).
    """

    def __init__(self, stages: FrameStages, captions: CaptionState, mode: Mode, queue_size: int, keep_maps: bool,
                 conformer: FrameConformer, counters: RunCounters, stop: threading.Event) -> None:
        self.stages = stages
        self.captions = captions
        self.mode = mode
        self.queue_size = queue_size
        self.keep_maps = keep_maps
        self.conformer = conformer
        self.counters = counters
        self.stop = stop
        self.abort = threading.Event()
        self.error: BaseException | None = None
        self._dropped: set[int] = set()
        self._drop_lock = threading.Lock()

    @property
    def latency(self) -> bool:
        return self.mode is Mode.LATENCY

    def boundary(self, size: int | None = None) -> Any:
        """A queue between two steps: newest-frame-wins (a :class:`LatestSlot`) in latency mode,
        a bounded FIFO of ``size`` (default: the run's queue size) otherwise.

        Latency mode puts a slot at every boundary (after capture, between stages, before
        the sinks), so no step ever works on or hands out a frame while a newer one waits:
        a slow sink gets the newest finished frame instead of one that queued behind several
        older ones, and its age stays within about one inference pass plus one sink period.
        """
        return LatestSlot() if self.latency else queue.Queue(size or self.queue_size)

    # ------------------------------------------------------------------ capture
    def capture(self, source: FrameSource) -> Packet | None | _End:
        """Read and conform one frame: a packet, None for a skipped frame, END at the end."""
        skipped = len(source.skipped)
        frame = source.read()
        if len(source.skipped) > skipped:  # files the source could not decode (counted live for --stats)
            self.counters.add("skipped", len(source.skipped) - skipped)
        if frame is None:
            return END
        self.counters.add("read")
        before = self.conformer.num_converted
        rgb = self.conformer(frame.rgb)
        if rgb is None:
            self.counters.add("skipped")
            return None
        if self.conformer.num_converted != before:
            self.counters.add("converted")
        frame.rgb = rgb
        return Packet(frame)

    def capture_loop(self, source: FrameSource, first: Any) -> None:
        """Thread body (run it through :meth:`guarded`): capture until the end, a stop or an abort; END goes last."""
        while not self.stop.is_set() and not self.abort.is_set():
            pkt = self.capture(source)
            if pkt is END:
                break
            if pkt is not None:
                self.put(first, pkt)
        self.put(first, END)

    def guarded(self, body: Callable[..., None], *args: Any) -> None:
        """Run a worker thread's ``body``: an abort ends it quietly, any error is handed to the caller's thread."""
        try:
            body(*args)
        except Aborted:
            return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread by drive()
            self.fail(exc)

    def thread(self, name: str, body: Callable[..., None], *args: Any) -> threading.Thread:
        """A daemon worker thread running ``body(*args)`` under :meth:`guarded`."""
        return threading.Thread(target=self.guarded, args=(body, *args), name=f"tr2m-{name}", daemon=True)

    # ------------------------------------------------------------------ queues
    def get(self, q: Any) -> Any:
        while True:
            if self.abort.is_set():
                raise Aborted
            try:
                return q.get(timeout=POLL)
            except queue.Empty:
                continue

    def put(self, q: Any, item: Any) -> None:
        """Put ``item`` on a queue, waiting while it is full (FIFO), or into a slot, replacing
        (and counting as dropped) an unread item; END closes a slot without dropping its item."""
        if isinstance(q, LatestSlot):
            if item is END:
                q.close()
            else:
                replaced, old = q.swap(item)
                if replaced:
                    self.drop(old)
            return
        while True:
            if self.abort.is_set():
                raise Aborted
            try:
                q.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def drop(self, pkt: Any) -> None:
        """Count a packet dropped for a newer one (once per frame, whichever boundary dropped it)."""
        index = pkt.frame.index if isinstance(pkt, Packet) else pkt.index  # a Packet or a finished MetricDepth
        with self._drop_lock:
            if index in self._dropped:
                return
            self._dropped.add(index)
        self.counters.add("dropped")

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.abort.set()

    # ------------------------------------------------------------------ driving
    def drive(self, source: FrameSource, threads: list[threading.Thread], results: Any,
              finish: Callable[[Any], MetricDepth]) -> Iterator[MetricDepth]:
        """Start ``threads``, yield ``finish(item)`` for every item of ``results`` until END, then join them."""
        for t in threads:
            t.start()
        try:
            while True:
                try:
                    item = self.get(results)
                except Aborted:
                    break
                if item is END:
                    break
                yield self.deliver(finish(item))
        finally:
            self.abort.set()  # no-op after a clean end; stops workers if the consumer left early
            source.request_stop()
            for t in threads:
                t.join(timeout=JOIN_TIMEOUT)
            alive = [t.name for t in threads if t.is_alive()]
            if alive:
                log.warning("pipeline threads still running after %.0f s: %s", JOIN_TIMEOUT, ", ".join(alive))
        if self.error is not None:
            raise self.error

    def finish(self, pkt: Packet) -> MetricDepth:
        """Postprocess one packet into its result."""
        start = time.perf_counter()
        result = self.stages.finish(pkt.frame, pkt.out, pkt.dep, pkt.caption, self.keep_maps)
        pkt.timings["postprocess"] = (time.perf_counter() - start) * 1e3
        result.stage_ms = dict(pkt.timings)
        result.captured_at = pkt.frame.t_capture
        return result

    def deliver(self, result: MetricDepth) -> MetricDepth:
        """Count a result as it leaves for the consumer; its latency is capture -> now."""
        result.latency_ms = (time.perf_counter() - result.captured_at) * 1e3
        self.counters.add("processed")
        if result.nonfinite:
            self.counters.add("nonfinite_frames")
            self.counters.add("nonfinite_values", result.nonfinite)
        return result
