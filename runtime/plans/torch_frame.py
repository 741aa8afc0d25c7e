"""The device plan's frame work over PyTorch runners: one thread issues a whole frame.

H2D into one of two device frame buffers, preprocess, depth and image encoder on two
streams joined by events, head, async D2H into pinned memory; the frame is collected
later, so nothing waits on the GPU while it computes. On the CPU the same code runs with
stand-in streams and events (work is done when it is issued), which is how its
scheduling is tested without a GPU. Declared by
:attr:`tr2m_edge.runtime.runners.torch_runner.TorchRunner.frame_plan`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tr2m_edge.contract import BIAS, DEPTH, FRAME, FRAME_HW, IMAGE, RELATIVE, SCALE, SHIFT, TOKENS
from tr2m_edge.errors import BackendError
from tr2m_edge.runtime.plans.frame import FrameOutputs, FramePlan, InFlight
from tr2m_edge.runtime.runners.torch_runner import TorchRunner
from tr2m_edge.runtime.stages import FrameStages


class _HostStream:
    """A CUDA stream's stand-in on the CPU: work is done when it is issued."""

    def wait_event(self, event: Any) -> None:
        return None

    def synchronize(self) -> None:
        return None


class _HostEvent:
    """A timing CUDA event's stand-in on the CPU: records the host clock."""

    def __init__(self) -> None:
        self.t = 0.0

    def record(self, stream: Any = None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        return None

    def elapsed_time(self, end: "_HostEvent") -> float:
        return (end.t - self.t) * 1e3


_EVENTS = ("start", "pre", "image0", "image1", "depth", "head0", "done")


class _Slot:
    """One of the plan's frame buffers: host + device frame, pinned outputs, timing events."""

    def __init__(self, make_event: Any) -> None:
        self.buffers: dict[str, torch.Tensor] = {}
        self.events = {k: make_event() for k in _EVENTS}
        self.outputs: list[tuple[str, str]] = []  # (output name, buffer name) to read back
        self.busy = False

    def buffer(self, name: str, shape: Sequence[int], dtype: torch.dtype, device: torch.device,
               pinned: bool = False) -> torch.Tensor:
        buf = self.buffers.get(name)
        if buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != dtype:
            buf = torch.empty(tuple(shape), dtype=dtype, device=device, pin_memory=pinned)
            self.buffers[name] = buf
        return buf


class TorchFramePlan(FramePlan):
    """The device plan's frame work over :class:`TorchRunner` s (CUDA, or the CPU for tests).

    :meth:`submit` issues one frame and returns at once: the frame is copied into a
    pinned host buffer and sent (async H2D) into one of two device frame buffers on the
    main stream; preprocess runs there, then the image encoder on a side stream (it waits
    for the preprocess event) while depth runs on the main stream; the head waits for
    the image encoder's event, and its depth map (A, B, D_r with ``keep_maps``) goes
    back by async D2H into pinned memory, followed by the slot's completion event.
    :meth:`_Flight.wait` blocks on that event. Stage times are CUDA event times (the
    preprocess includes the H2D copy, the head the D2H copy).

    On the CPU the same code runs with stand-in streams and events (work is done when it
    is issued), which is how its scheduling is tested without a GPU.
    """

    def __init__(self, stages: FrameStages) -> None:
        if not self.supports(stages):
            raise BackendError("TorchFramePlan needs activated TorchRunners that share one device.")
        runners = stages.runners
        self.stages = stages
        self.pre, self.dep, self.head = runners["preprocess"], runners["depth"], runners["head"]
        self.img = runners.get("image_encoder")
        self.device: torch.device = self.dep.device  # type: ignore[assignment]
        self.cuda = self.device.type == "cuda"
        self.asynchronous = self.cuda
        if self.cuda:
            self.main: Any = torch.cuda.Stream(device=self.device)
            self.side: Any = torch.cuda.Stream(device=self.device)
            make_event: Any = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
        else:
            self.main = self.side = _HostStream()
            make_event = _HostEvent
        self._slots = [_Slot(make_event) for _ in range(self.slots)]
        self._count = 0
        self._bias_src: np.ndarray | None = None
        self._bias_dev: torch.Tensor | None = None

    @staticmethod
    def supports(stages: FrameStages) -> bool:
        """True when every runner is an active TorchRunner and all share one device."""
        runners = list(stages.runners.values())
        return bool(runners) and all(isinstance(r, TorchRunner) and r.is_active for r in runners) and \
            len({str(r.device) for r in runners}) == 1

    # ------------------------------------------------------------------ helpers
    def _on(self, stream: Any) -> Any:
        return torch.cuda.stream(stream) if self.cuda else contextlib.nullcontext()

    def _keep(self, tensor: torch.Tensor, stream: Any) -> None:
        """``tensor`` was made on another stream and is read on ``stream``: keep its memory until then."""
        if self.cuda:
            tensor.record_stream(stream)

    def _bias(self, bias: np.ndarray) -> torch.Tensor:
        """The (1, C) scene bias on the device, uploaded again only when its values change (a caption switch)."""
        if self._bias_dev is None or self._bias_src is None or not np.array_equal(bias, self._bias_src):
            self._bias_src = np.array(bias, dtype=np.float32)  # a copy: the caller's array may change later
            self._bias_dev = torch.from_numpy(self._bias_src).to(self.device)
        return self._bias_dev

    # ------------------------------------------------------------------ frame work
    def submit(self, rgb: np.ndarray, bias: np.ndarray, frame_hw: tuple[int, int], keep_maps: bool) -> InFlight:
        slot = self._slots[self._count % self.slots]
        if slot.busy:
            raise RuntimeError("TorchFramePlan: a frame buffer was reused before its frame was waited for")  # a bug
        self._count += 1
        ev = slot.events
        device_ctx = torch.cuda.device(self.device) if self.cuda else contextlib.nullcontext()
        with torch.no_grad(), device_ctx:
            host = slot.buffer("frame_host", rgb.shape, torch.uint8, torch.device("cpu"), pinned=self.cuda)
            np.copyto(host.numpy(), rgb)
            with self._on(self.main):
                ev["start"].record(self.main)
                frame = slot.buffer("frame", rgb.shape, torch.uint8, self.device)
                frame.copy_(host, non_blocking=True)
                image = self.pre.run_async({FRAME: frame})[IMAGE]
                ev["pre"].record(self.main)
            tokens = None
            if self.img is not None:
                with self._on(self.side):
                    self.side.wait_event(ev["pre"])
                    self._keep(image, self.side)
                    ev["image0"].record(self.side)
                    tokens = self.img.run_async({IMAGE: image})[TOKENS]
                    ev["image1"].record(self.side)
            with self._on(self.main):
                dep = self.dep.run_async({IMAGE: image})
                ev["depth"].record(self.main)
                if tokens is None:
                    tokens = dep[TOKENS]
                else:
                    self.main.wait_event(ev["image1"])
                    self._keep(tokens, self.main)
                ev["head0"].record(self.main)
                feed = {TOKENS: tokens, RELATIVE: dep[RELATIVE], BIAS: self._bias(bias)}
                if self.stages.needs_frame_hw:
                    feed[FRAME_HW] = torch.tensor(frame_hw, dtype=torch.int64)  # read as ints on the host
                out = self.head.run_async(feed)
                wanted = {DEPTH: out[DEPTH]}
                if keep_maps:
                    wanted.update({SCALE: out[SCALE], SHIFT: out[SHIFT], RELATIVE: dep[RELATIVE]})
                slot.outputs = []
                for name, value in wanted.items():
                    value = value.float()
                    buf = slot.buffer(f"out_{name}", value.shape, torch.float32, torch.device("cpu"), pinned=self.cuda)
                    buf.copy_(value, non_blocking=True)
                    slot.outputs.append((name, f"out_{name}"))
                ev["done"].record(self.main)
        slot.busy = True
        return _Flight(self, slot)

    def close(self) -> None:
        self.main.synchronize()
        self.side.synchronize()
        for slot in self._slots:
            slot.busy = False
            slot.buffers.clear()
        self._bias_src = self._bias_dev = None


class _Flight(InFlight):
    def __init__(self, plan: TorchFramePlan, slot: _Slot) -> None:
        self.plan, self.slot = plan, slot

    def wait(self) -> FrameOutputs:
        slot, ev = self.slot, self.slot.events
        ev["done"].synchronize()
        ms = {"preprocess": ev["start"].elapsed_time(ev["pre"]), "depth": ev["pre"].elapsed_time(ev["depth"]),
              "head": ev["head0"].elapsed_time(ev["done"])}
        if self.plan.img is not None:
            ms["image_encoder"] = ev["image0"].elapsed_time(ev["image1"])
        values = {name: slot.buffers[buf].numpy().copy() for name, buf in slot.outputs}  # the buffers are reused
        slot.busy = False
        dep = {RELATIVE: values.pop(RELATIVE)} if RELATIVE in values else {}
        return FrameOutputs(values, dep, ms)
