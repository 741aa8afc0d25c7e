"""Pipelined executor: capture -> preprocess -> {depth, image encoder} -> head -> postprocess.

Modes (what happens to frames):
    ``throughput``: nothing is dropped and order is kept (files); the capture blocks
        when the pipeline is full.
    ``latency``: newest frame wins (live sources); a frame still waiting when a newer
        one arrives is dropped and counted, so latency stays bounded by the pipeline depth.
    ``serial``: every stage in turn in the caller's thread (the baseline for comparison).

Plans (how the pipelined modes use the machine), picked from the runners' device:
    ``threads`` (CPU runners): one host thread per stage, joined by bounded queues; the
        depth and image-encoder stages run concurrently on the same preprocessed frame
        (ONNX Runtime releases the GIL while it computes; sessions split the cores).
    ``device`` (GPU runners): few host threads, because GPU launches are asynchronous
        and a thread per stage only fights over the GIL. A capture thread reads and
        conforms frames; ONE inference thread issues all of frame N's GPU work through a
        :class:`~tr2m_edge.runtime.stages.FramePlan` (double-buffered device inputs, two
        streams joined by events, async D2H into pinned memory) and only then waits for
        frame N-1, so the host prepares frame N+1 while the GPU computes frame N. When no
        new frame is waiting it completes the pending one first, so latency mode does not
        hold a finished frame back for a camera period.
In both plans results come back in order, the sinks run in the caller's thread (the
device plan postprocesses there too), and :meth:`Executor.stop` drains: capture stops,
every frame already captured still comes out, then the iterator ends.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from tr2m_edge.errors import ConfigError
from tr2m_edge.runtime.frames import Frame, FrameConformer
from tr2m_edge.runtime.results import MetricDepth, RunCounters
from tr2m_edge.runtime.sources import FrameSource
from tr2m_edge.runtime.stages import FramePlan, FrameStages, InFlight, SceneState

log = logging.getLogger(__name__)
_POLL = 0.05  # seconds between checks of the abort flag while blocked on a queue
PLANS = ("auto", "threads", "device")


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


def choose_plan(mode: "str | Mode", stages: FrameStages, plan: str = "auto") -> tuple[str, str]:
    """(plan, reason): ``serial`` for serial mode; else ``device`` for GPU runners, ``threads`` for CPU runners.

    Raises:
        ConfigError: an unknown plan name.
    """
    if plan not in PLANS:
        raise ConfigError(f"Unknown executor plan '{plan}'. Available: {', '.join(PLANS)}.")
    if Mode.parse(mode) is Mode.SERIAL:
        return "serial", "serial mode: every stage in turn in the caller's thread"
    if plan != "auto":
        return plan, "requested"
    if stages.device_kind == "cuda":
        return "device", "runners on a GPU: one thread issues each frame's GPU work, double-buffered"
    return "threads", "runners on the CPU: one thread per stage"


class _End:
    """End-of-stream marker passed through every queue."""


END = _End()


class _Aborted(Exception):
    """Raised inside workers when the run is aborted (error or consumer gone)."""


@dataclass
class _Packet:
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
        with self._cond:
            replaced = self._has
            self._item, self._has = item, True
            self._cond.notify()
            return replaced

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


class Executor:
    """Runs :class:`FrameStages` over a :class:`FrameSource` in one of the three modes.

    Args:
        stages: activated stages.
        scene: the scene state the head stage reads per frame.
        mode: ``throughput``, ``latency`` or ``serial``.
        queue_size: capacity of each inter-stage queue (throughput mode).
        keep_maps: attach A, B and D_r to every result.
        conformer: frame guard (sizes/channels); a default one for the stages' frame size.
        plan: ``auto`` (from the runners' device), ``threads`` or ``device``; the one
            used is :attr:`plan` (``serial`` in serial mode), with :attr:`plan_reason`.
    """

    def __init__(self, stages: FrameStages, scene: SceneState, *, mode: str | Mode = Mode.THROUGHPUT,
                 queue_size: int = 2, keep_maps: bool = False, conformer: FrameConformer | None = None,
                 plan: str = "auto") -> None:
        self.stages = stages
        self.scene = scene
        self.mode = Mode.parse(mode)
        self.plan, self.plan_reason = choose_plan(self.mode, stages, plan)
        self.queue_size = max(1, int(queue_size))
        self.keep_maps = keep_maps
        self.conformer = conformer or FrameConformer(stages.frame_size)
        self.counters = RunCounters()
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._error: BaseException | None = None
        self._source: FrameSource | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ control
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
        self._abort.clear()
        self._error = None
        source.open()
        log.info("executor: %s mode, %s plan (%s)", self.mode.value, self.plan, self.plan_reason)
        try:
            if self.plan == "serial":
                yield from self._run_serial(source)
            elif self.plan == "device":
                yield from self._run_device(source)
            else:
                yield from self._run_pipelined(source)
        finally:
            source.close()

    # ------------------------------------------------------------------ shared steps
    def _capture(self, source: FrameSource) -> _Packet | None | _End:
        """Read and conform one frame: a packet, None for a skipped frame, END at the end."""
        frame = source.read()
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
        return _Packet(frame)

    def _timed(self, pkt: _Packet, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = fn()
        pkt.timings[name] = (time.perf_counter() - start) * 1e3
        return value

    def _do_preprocess(self, pkt: _Packet) -> _Packet:
        pkt.pre = self._timed(pkt, "preprocess", lambda: self.stages.preprocess(pkt.frame.rgb))
        return pkt

    def _do_depth(self, pkt: _Packet) -> _Packet:
        pkt.dep = self._timed(pkt, "depth", lambda: self.stages.depth(pkt.pre))
        return pkt

    def _do_image(self, pkt: _Packet) -> _Packet:
        if self.stages.has_image_encoder:
            pkt.img = self._timed(pkt, "image_encoder", lambda: self.stages.image(pkt.pre))
        return pkt

    def _do_head(self, pkt: _Packet, other: _Packet | None = None) -> _Packet:
        if other is not None and other is not pkt:
            raise RuntimeError("pipeline out of order: depth and image-encoder stages disagree")  # a bug, not user input
        caption, bias = self.scene.get()
        pkt.caption = caption
        hw = pkt.frame.rgb.shape[:2]
        pkt.out = self._timed(pkt, "head", lambda: self.stages.head(pkt.dep, pkt.img, bias, hw))
        pkt.pre = {}  # free the input tensors early
        return pkt

    def _do_finish(self, pkt: _Packet) -> MetricDepth:
        result = self._timed(
            pkt, "postprocess", lambda: self.stages.finish(pkt.frame, pkt.out, pkt.dep, pkt.caption, self.keep_maps)
        )
        result.stage_ms = dict(pkt.timings)
        result.latency_ms = (time.perf_counter() - pkt.frame.t_capture) * 1e3
        self.counters.add("processed")
        if result.nonfinite:
            self.counters.add("nonfinite_frames")
            self.counters.add("nonfinite_values", result.nonfinite)
        return result

    # ------------------------------------------------------------------ serial
    def _run_serial(self, source: FrameSource) -> Iterator[MetricDepth]:
        while not self._stop.is_set():
            pkt = self._capture(source)
            if pkt is END:
                return
            if pkt is None:
                continue
            self._do_preprocess(pkt)
            self._do_depth(pkt)
            self._do_image(pkt)
            self._do_head(pkt)
            yield self._do_finish(pkt)

    # ------------------------------------------------------------------ pipelined
    def _get(self, q: Any) -> Any:
        while True:
            if self._abort.is_set():
                raise _Aborted
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue

    def _put(self, q: queue.Queue, item: Any) -> None:
        while True:
            if self._abort.is_set():
                raise _Aborted
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._abort.set()

    def _capture_loop(self, source: FrameSource, first: Any) -> None:
        latency = self.mode is Mode.LATENCY
        try:
            while not self._stop.is_set() and not self._abort.is_set():
                pkt = self._capture(source)
                if pkt is END:
                    break
                if pkt is None:
                    continue
                if latency:
                    if first.put(pkt):
                        self.counters.add("dropped")
                else:
                    self._put(first, pkt)
            if latency:
                first.close()
            else:
                self._put(first, END)
        except _Aborted:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._fail(exc)

    def _stage_loop(self, fn: Callable[..., Any], inputs: list[Any], outputs: list[queue.Queue]) -> None:
        try:
            while True:
                items = [self._get(q) for q in inputs]
                if any(item is END for item in items):
                    for q in outputs:
                        self._put(q, END)
                    return
                value = fn(*items)
                for q in outputs:
                    self._put(q, value)
        except _Aborted:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._fail(exc)

    def _run_pipelined(self, source: FrameSource) -> Iterator[MetricDepth]:
        size = 1 if self.mode is Mode.LATENCY else self.queue_size
        first: Any = LatestSlot() if self.mode is Mode.LATENCY else queue.Queue(size)
        to_depth: queue.Queue = queue.Queue(size)
        depth_out: queue.Queue = queue.Queue(size)
        to_finish: queue.Queue = queue.Queue(size)
        results: queue.Queue = queue.Queue(size)
        plan: list[tuple[str, Callable[..., Any], list[Any], list[queue.Queue]]]
        if self.stages.has_image_encoder:
            to_image: queue.Queue = queue.Queue(size)
            image_out: queue.Queue = queue.Queue(size)
            plan = [
                ("preprocess", self._do_preprocess, [first], [to_depth, to_image]),
                ("depth", self._do_depth, [to_depth], [depth_out]),
                ("image_encoder", self._do_image, [to_image], [image_out]),
                ("head", self._do_head, [depth_out, image_out], [to_finish]),
            ]
        else:
            plan = [
                ("preprocess", self._do_preprocess, [first], [to_depth]),
                ("depth", self._do_depth, [to_depth], [depth_out]),
                ("head", self._do_head, [depth_out], [to_finish]),
            ]
        plan.append(("postprocess", self._do_finish, [to_finish], [results]))
        threads = [threading.Thread(target=self._capture_loop, args=(source, first), name="tr2m-capture", daemon=True)]
        threads += [
            threading.Thread(target=self._stage_loop, args=(fn, ins, outs), name=f"tr2m-{name}", daemon=True)
            for name, fn, ins, outs in plan
        ]
        yield from self._drive(source, threads, results, lambda item: item)

    def _drive(self, source: FrameSource, threads: list[threading.Thread], results: queue.Queue,
               finish: Callable[[Any], MetricDepth]) -> Iterator[MetricDepth]:
        """Start ``threads``, yield ``finish(item)`` for every item of ``results`` until END, then join them."""
        self._threads = threads
        for t in threads:
            t.start()
        try:
            while True:
                try:
                    item = self._get(results)
                except _Aborted:
                    break
                if item is END:
                    break
                yield finish(item)
        finally:
            self._abort.set()  # no-op after a clean end; stops workers if the consumer left early
            source.request_stop()
            for t in threads:
                t.join(timeout=10.0)
            alive = [t.name for t in threads if t.is_alive()]
            if alive:
                log.warning("pipeline threads still running after 10 s: %s", ", ".join(alive))
        if self._error is not None:
            raise self._error

    # ------------------------------------------------------------------ device plan
    def _run_device(self, source: FrameSource) -> Iterator[MetricDepth]:
        latency = self.mode is Mode.LATENCY
        first: Any = LatestSlot() if latency else queue.Queue(self.queue_size)
        results: queue.Queue = queue.Queue(1 if latency else self.queue_size)
        frame_plan = self.stages.frame_plan()
        threads = [
            threading.Thread(target=self._capture_loop, args=(source, first), name="tr2m-capture", daemon=True),
            threading.Thread(target=self._infer_loop, args=(first, results, frame_plan), name="tr2m-infer", daemon=True),
        ]
        try:
            yield from self._drive(source, threads, results, self._do_finish)  # postprocess in the caller's thread
        finally:
            frame_plan.close()

    def _infer_loop(self, first: Any, results: queue.Queue, plan: FramePlan) -> None:
        """Submit frame N, then complete frame N-1; with no frame waiting, complete the pending one first."""
        pending: deque[tuple[_Packet, InFlight]] = deque()
        try:
            while True:
                if pending:
                    if self._abort.is_set():
                        raise _Aborted
                    try:
                        item = first.get(timeout=0)
                    except queue.Empty:
                        self._complete(pending.popleft(), results)
                        continue
                else:
                    item = self._get(first)
                if item is END:
                    break
                pending.append(self._submit(item, plan))
                while len(pending) >= plan.slots:
                    self._complete(pending.popleft(), results)
            while pending:
                self._complete(pending.popleft(), results)
            self._put(results, END)
        except _Aborted:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._fail(exc)

    def _submit(self, pkt: _Packet, plan: FramePlan) -> tuple[_Packet, InFlight]:
        caption, bias = self.scene.get()
        pkt.caption = caption
        start = time.perf_counter()
        flight = plan.submit(pkt.frame.rgb, bias, pkt.frame.rgb.shape[:2], self.keep_maps)
        if plan.asynchronous:
            pkt.timings["launch"] = (time.perf_counter() - start) * 1e3  # host time to issue the frame
        return pkt, flight

    def _complete(self, item: tuple[_Packet, InFlight], results: queue.Queue) -> None:
        pkt, flight = item
        outputs = flight.wait()
        pkt.out, pkt.dep = outputs.out, outputs.dep
        pkt.timings.update(outputs.stage_ms)
        self._put(results, pkt)
