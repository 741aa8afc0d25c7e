"""PyTorch runner: the model's contract components behind the runner API.

The same named tensors as the exported graphs (:mod:`tr2m_edge.contract`), computed by
the very modules the exporter traces (:meth:`tr2m_edge.model.tr2m.TR2M.components`), so
the executor drives PyTorch, ONNX Runtime and TensorRT alike and the parity reference is
just another runner set. On CUDA a runner can own a stream, run in fp16 and replay a
captured CUDA graph; host inputs go through reused pinned staging buffers. The device
plan over these runners is :class:`tr2m_edge.runtime.plans.torch_frame.TorchFramePlan`
(declared by :attr:`TorchRunner.frame_plan`). Importing this module imports PyTorch: the
runtime does so only when the torch backend is chosen.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from tr2m_edge.contract import FRAME_COMPONENTS, TensorSpec, component_io
from tr2m_edge.errors import BackendError
from tr2m_edge.model.tr2m import TR2M
from tr2m_edge.runtime.runners.base import Runner

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def torch_components(
    model: TR2M, frame_size: tuple[int, int] | None, which: Sequence[str] = FRAME_COMPONENTS,
) -> dict[str, tuple[nn.Module, tuple[TensorSpec, ...], tuple[TensorSpec, ...]]]:
    """(module, inputs, outputs) of each of ``which`` components of ``model`` (per-frame ones by default)."""
    io = component_io(model.cfg, frame_size)
    modules = model.components(frame_size)
    return {k: (modules[k], *io[k]) for k in which if k in modules}


# ---------------------------------------------------------------- runner
class TorchRunner(Runner):
    """Runs a module on named tensors: ``forward(**inputs)`` returns its outputs in ``outputs``
    order (a tensor when there is one, a tuple otherwise, or a dict by name).

    Args:
        module: the module (e.g. a component of :meth:`TR2M.components`).
        inputs / outputs: the tensor metadata it accepts / produces.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        fp16: shorthand for ``dtype="fp16"``.
        dtype: ``fp32``, or ``fp16`` / ``bf16`` (CUDA only): the module and its float inputs
            are cast to it; outputs come back as float32.
        channels_last: convert the module and its 4-D float inputs to the channels-last
            memory format (the convolutional decoders may run faster so).
        compile: run the module through ``torch.compile`` (inductor; graphs captured by
            this runner, not by inductor); compiled on the first call.
        cuda_graph: capture the module in a CUDA graph on the first call and replay it
            (fixed shapes; falls back to eager with a warning if capture fails).
        own_stream: run :meth:`infer` on a private CUDA stream (so stages in different
            threads overlap).
        host_outputs: return numpy arrays (True), device tensors (False), or numpy for the
            named outputs only.
    """

    frame_plan = "torch"

    def __init__(
        self, module: nn.Module, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *,
        device: str = "cpu", fp16: bool = False, cuda_graph: bool = False, own_stream: bool = False,
        host_outputs: bool | Sequence[str] = True, name: str = "torch", dtype: str = "fp32",
        channels_last: bool = False, compile: bool = False,
    ) -> None:
        super().__init__(name)
        self.module = module
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.device_name = device
        if dtype not in DTYPES:
            raise BackendError(f"Runner '{name}': unknown dtype '{dtype}'. Available: {', '.join(DTYPES)}.")
        self.dtype = "fp16" if fp16 else dtype
        self.channels_last = channels_last
        self.compile = compile
        self._forward: Any = module
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
        if self.dtype != "fp32" and device.type != "cuda":
            raise BackendError(f"Runner '{self.name}': {self.dtype} needs a CUDA device (got {self.device_name}); "
                               "use fp32 on the CPU.")
        if self.cuda_graph and device.type != "cuda":
            raise BackendError(f"Runner '{self.name}': CUDA graphs need a CUDA device (got {self.device_name}).")
        self.device = device
        self.module.to(device).eval()
        if self.dtype != "fp32":
            self.module.to(DTYPES[self.dtype])
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)
        self._forward = torch.compile(self.module, dynamic=False) \
            if self.compile else self.module
        if device.type == "cuda":
            if self.own_stream:
                self.stream = torch.cuda.Stream(device=device)
            self._staged = torch.cuda.Event()

    def get_input_metadata_impl(self) -> list[TensorSpec]:
        return list(self.inputs)

    def get_output_metadata_impl(self) -> list[TensorSpec]:
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
        return self._cast(t)

    @property
    def fp16(self) -> bool:
        return self.dtype == "fp16"

    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        """A float input in this runner's dtype (and memory format)."""
        if not t.is_floating_point():
            return t
        if self.dtype != "fp32":
            t = t.to(DTYPES[self.dtype])
        if self.channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
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
        """Issue the module on the current stream and return at once (for the torch frame plan).

        Tensors already on this runner's device in (host int64 ``frame_hw`` may stay on
        the host), device tensors out in the module's own dtypes; no validation, no host
        copies, no synchronisation. Float inputs are cast to the runner's dtype.
        """
        self._require_active()
        with torch.no_grad():
            feed = {k: self._cast(v) for k, v in tensors.items()}
            return self._run(feed)

    def _call(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The module's outputs by name."""
        out = self._forward(**tensors)
        if isinstance(out, dict):
            return out
        return dict(zip((o.name for o in self.outputs), out if isinstance(out, tuple) else (out,)))

    def _run(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.cuda_graph:
            return self._call(tensors)
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
            return self._call(tensors)

    def _capture(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._static_in = {k: v.clone() for k, v in tensors.items()}
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: lazy inits must not happen during capture
                self._call(self._static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: other pipeline stages keep running on their own streams meanwhile.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._static_out = self._call(self._static_in)
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
        self._forward = self.module
        self._static_in, self._static_out = {}, {}
        self._staging, self._staged = {}, None
        self.stream = None
