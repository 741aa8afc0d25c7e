"""PyTorch reference runner: the per-frame components of a TR2M model behind the runner API.

The same named tensors as the exported graphs (see :mod:`tr2m_edge.runtime.contract`), so
the executor drives PyTorch, ONNX Runtime and TensorRT alike. On CUDA a runner can own a
stream, run in fp16 and replay a captured CUDA graph; host inputs go through reused
pinned staging buffers. :class:`TorchFramePlan` is the device plan over these runners:
one thread issues a whole frame (H2D into one of two device frame buffers, preprocess,
depth and image encoder on two streams joined by events, head, async D2H into pinned
memory) and collects it later, so nothing waits on the GPU while it computes. Importing
this module imports PyTorch: the runtime does so only when the torch backend is chosen.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from tr2m_edge.errors import BackendError
from tr2m_edge.model.frame import FramePreprocessor
from tr2m_edge.model.head import metric_from_relative
from tr2m_edge.model.tr2m import TR2M, postprocess_depth
from tr2m_edge.runtime import contract as C
from tr2m_edge.runtime.runners.base import Runner, TensorMeta
from tr2m_edge.runtime.stages import FrameOutputs, FramePlan, FrameStages, InFlight

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- components
class PreprocessComponent(nn.Module):
    """frame uint8 (H, W, 3) RGB -> image (1, 3, h, w) normalised (core :class:`FramePreprocessor`)."""

    def __init__(self, model: TR2M) -> None:
        super().__init__()
        self.pre = FramePreprocessor(model.cfg.preprocess)

    def forward(self, frame: torch.Tensor) -> dict[str, torch.Tensor]:
        return {C.IMAGE: self.pre(frame)}


class DepthComponent(nn.Module):
    """image -> relative_depth (1, 1, h, w) [+ image_tokens (1, N, C) when the backbone is shared]."""

    def __init__(self, model: TR2M) -> None:
        super().__init__()
        self.encoder = model.depth_encoder

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        rel, tokens = self.encoder(image)
        out = {C.RELATIVE: rel}
        if tokens is not None:
            out[C.TOKENS] = tokens
        return out


class ImageComponent(nn.Module):
    """image -> image_tokens (1, N, C)."""

    def __init__(self, model: TR2M) -> None:
        super().__init__()
        self.encoder = model.image_encoder

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {C.TOKENS: self.encoder(image)}


class HeadComponent(nn.Module):
    """tokens, D_r, scene bias [, frame_hw] -> depth (1,1,H,W) metres clipped; scale, shift (1,1,h,w)."""

    def __init__(self, model: TR2M, frame_size: tuple[int, int] | None) -> None:
        super().__init__()
        self.head = model.head
        self.frame_size = frame_size
        self.min_depth, self.max_depth = model.cfg.min_depth, model.cfg.max_depth

    def forward(self, image_tokens: torch.Tensor, relative_depth: torch.Tensor, scene_bias: torch.Tensor,
                frame_hw: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        grid = (relative_depth.shape[-2] // 14, relative_depth.shape[-1] // 14)
        a, b = self.head.forward_frame(image_tokens, scene_bias.to(image_tokens.dtype), grid)[:2]
        raw = metric_from_relative(a, b, relative_depth)
        size = self.frame_size if frame_hw is None else (int(frame_hw[0]), int(frame_hw[1]))
        depth = postprocess_depth(raw, size, self.min_depth, self.max_depth)
        return {C.DEPTH: depth, C.SCALE: a.float(), C.SHIFT: b.float()}


def torch_components(model: TR2M, frame_size: tuple[int, int] | None) -> dict[str, tuple[nn.Module, list[TensorMeta], list[TensorMeta]]]:
    """(module, inputs, outputs) of each per-frame component of ``model``."""
    io = C.component_io(model.cfg, frame_size)
    modules: dict[str, nn.Module] = {
        "preprocess": PreprocessComponent(model), "depth": DepthComponent(model),
        "head": HeadComponent(model, frame_size),
    }
    if not model.cfg.shared_backbone:
        modules["image_encoder"] = ImageComponent(model)
    return {k: (m, io[k][0], io[k][1]) for k, m in modules.items()}


# ---------------------------------------------------------------- runner
class TorchRunner(Runner):
    """Runs a module that maps named tensors to a dict of named tensors.

    Args:
        module: ``forward(**inputs) -> dict[str, Tensor]``.
        inputs / outputs: the tensor metadata it accepts / produces.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        fp16: cast the module and its float inputs to half precision (CUDA only); outputs
            come back as float32.
        cuda_graph: capture the module in a CUDA graph on the first call and replay it
            (fixed shapes; falls back to eager with a warning if capture fails).
        own_stream: run :meth:`infer` on a private CUDA stream (so stages in different
            threads overlap).
        host_outputs: return numpy arrays (True), device tensors (False), or numpy for the
            named outputs only.
    """

    def __init__(
        self, module: nn.Module, inputs: Sequence[TensorMeta], outputs: Sequence[TensorMeta], *,
        device: str = "cpu", fp16: bool = False, cuda_graph: bool = False, own_stream: bool = False,
        host_outputs: bool | Sequence[str] = True, name: str = "torch",
    ) -> None:
        super().__init__(name)
        self.module = module
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.device_name = device
        self.fp16 = fp16
        self.cuda_graph = cuda_graph
        self.own_stream = own_stream
        self.host_outputs = host_outputs
        self.device: torch.device | None = None
        self.stream: Any = None
        self._graph: Any = None
        self._static_in: dict[str, torch.Tensor] = {}
        self._static_out: dict[str, torch.Tensor] = {}
        self._staging: dict[str, torch.Tensor] = {}  # pinned host buffers, one per host input
        self._staged: Any = None  # CUDA event: the last H2D copies out of the staging buffers are done

    @property
    def device_kind(self) -> str:
        return torch.device(self.device_name).type

    def activate_impl(self) -> None:
        device = torch.device(self.device_name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"Runner '{self.name}' asked for {self.device_name}, but PyTorch sees no CUDA GPU. Use device 'cpu'.")
        if self.fp16 and device.type != "cuda":
            raise BackendError(f"Runner '{self.name}': fp16 needs a CUDA device (got {self.device_name}); use fp32 on the CPU.")
        if self.cuda_graph and device.type != "cuda":
            raise BackendError(f"Runner '{self.name}': CUDA graphs need a CUDA device (got {self.device_name}).")
        self.device = device
        self.module.to(device).eval()
        if self.fp16:
            self.module.half()
        if device.type == "cuda":
            if self.own_stream:
                self.stream = torch.cuda.Stream(device=device)
            self._staged = torch.cuda.Event()

    def get_input_metadata_impl(self) -> list[TensorMeta]:
        return list(self.inputs)

    def get_output_metadata_impl(self) -> list[TensorMeta]:
        return list(self.outputs)

    def _stage(self, name: str, host: torch.Tensor) -> torch.Tensor:
        """Host tensor -> device through this input's reused pinned buffer (async H2D on the current stream)."""
        buf = self._staging.get(name)
        self._staged.synchronize()  # the previous call's copies out of the staging buffers have finished
        if buf is None or buf.shape != host.shape or buf.dtype != host.dtype:
            buf = self._staging[name] = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
        buf.copy_(host)
        return buf.to(self.device, non_blocking=True)

    def _to_device(self, name: str, value: Any) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
        on_gpu = self.device is not None and self.device.type == "cuda"
        if on_gpu and t.device.type == "cpu":
            t = self._stage(name, t)
        else:
            t = t.to(self.device, non_blocking=True)
            if self.stream is not None and t.is_cuda:
                t.record_stream(self.stream)  # produced elsewhere, consumed on this stream
        if self.fp16 and t.is_floating_point():
            t = t.half()
        return t

    def infer_impl(self, feed: dict[str, Any]) -> dict[str, Any]:
        ctx = torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()
        with ctx, torch.no_grad():
            tensors = {k: self._to_device(k, v) for k, v in feed.items()}
            if self._staged is not None:
                self._staged.record()
            out = self._run(tensors)
            out = {k: (v.float() if v.is_floating_point() else v) for k, v in out.items()}
        if self.stream is not None:
            self.stream.synchronize()  # outputs are complete before another thread/stream reads them
        return {k: self._export(k, v) for k, v in out.items()}

    def run_async(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Issue the module on the current stream and return at once (for :class:`TorchFramePlan`).

        Tensors already on this runner's device in (host int64 ``frame_hw`` may stay on
        the host), device tensors out in the module's own dtypes; no validation, no host
        copies, no synchronisation. Float inputs are cast to half with ``fp16``.
        """
        self._require_active()
        with torch.no_grad():
            feed = {k: (v.half() if self.fp16 and v.is_floating_point() else v) for k, v in tensors.items()}
            return self._run(feed)

    def _run(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.cuda_graph:
            return self.module(**tensors)
        if self._graph is not None and all(
            self._static_in[k].shape == v.shape for k, v in tensors.items()
        ):
            for k, v in tensors.items():
                self._static_in[k].copy_(v)
            self._graph.replay()
            return {k: v.clone() for k, v in self._static_out.items()}
        try:
            return self._capture(tensors)
        except Exception as exc:  # noqa: BLE001 - capture support varies by op; eager always works
            log.warning("CUDA graph capture failed for %s (%s); running eagerly.", self.name, exc)
            self.cuda_graph, self._graph = False, None
            return self.module(**tensors)

    def _capture(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._static_in = {k: v.clone() for k, v in tensors.items()}
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: lazy inits must not happen during capture
                self.module(**self._static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: other pipeline stages keep running on their own streams meanwhile.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._static_out = self.module(**self._static_in)
        self._graph = graph
        graph.replay()
        return {k: v.clone() for k, v in self._static_out.items()}

    def _export(self, name: str, value: torch.Tensor) -> Any:
        host = self.host_outputs if isinstance(self.host_outputs, bool) else name in self.host_outputs
        return value.detach().cpu().numpy() if host else value

    def deactivate_impl(self) -> None:
        if self._staged is not None:
            self._staged.synchronize()
        self._graph = None
        self._static_in, self._static_out = {}, {}
        self._staging, self._staged = {}, None
        self.stream = None


# ---------------------------------------------------------------- device plan
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
                image = self.pre.run_async({C.FRAME: frame})[C.IMAGE]
                ev["pre"].record(self.main)
            tokens = None
            if self.img is not None:
                with self._on(self.side):
                    self.side.wait_event(ev["pre"])
                    self._keep(image, self.side)
                    ev["image0"].record(self.side)
                    tokens = self.img.run_async({C.IMAGE: image})[C.TOKENS]
                    ev["image1"].record(self.side)
            with self._on(self.main):
                dep = self.dep.run_async({C.IMAGE: image})
                ev["depth"].record(self.main)
                if tokens is None:
                    tokens = dep[C.TOKENS]
                else:
                    self.main.wait_event(ev["image1"])
                    self._keep(tokens, self.main)
                ev["head0"].record(self.main)
                feed = {C.TOKENS: tokens, C.RELATIVE: dep[C.RELATIVE], C.BIAS: self._bias(bias)}
                if self.stages.needs_frame_hw:
                    feed[C.FRAME_HW] = torch.tensor(frame_hw, dtype=torch.int64)  # read as ints on the host
                out = self.head.run_async(feed)
                wanted = {C.DEPTH: out[C.DEPTH]}
                if keep_maps:
                    wanted.update({C.SCALE: out[C.SCALE], C.SHIFT: out[C.SHIFT], C.RELATIVE: dep[C.RELATIVE]})
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
        dep = {C.RELATIVE: values.pop(C.RELATIVE)} if C.RELATIVE in values else {}
        return FrameOutputs(values, dep, ms)
