"""ONNX Runtime runner: CPU, CUDA or TensorRT execution providers.

Providers are tried in the order given (the TensorRT EP first, then CUDA, then CPU as the
always-present fallback). On GPU providers the runner uses IOBinding: inputs are bound
from host memory once, and outputs named in ``device_outputs`` stay on the GPU as
``OrtValue`` so the next stage reads them without a device->host->device round trip.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tr2m_edge.errors import BackendError
from tr2m_edge.contract import TensorSpec
from tr2m_edge.runtime.runners.base import Runner, ort_type_to_numpy

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
PROVIDER_ALIASES = {"cpu": CPU, "cuda": CUDA, "trt": TENSORRT, "tensorrt": TENSORRT}
GPU_PROVIDERS = (CUDA, TENSORRT)


def available_providers() -> list[str]:
    """Execution providers of the installed onnxruntime (empty when it is missing)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def resolve_providers(requested: Sequence[str]) -> list[str]:
    """Full provider names for aliases (``cpu``, ``cuda``, ``trt``), checked against what is installed.

    CPU is appended as the fallback for nodes a GPU provider cannot take.

    Raises:
        BackendError: a requested provider is not available.
    """
    have = available_providers()
    if not have:
        raise BackendError("onnxruntime is not installed: pip install 'tr2m-edge[cpu]' (or [gpu] for onnxruntime-gpu).")
    names: list[str] = []
    for item in requested:
        full = PROVIDER_ALIASES.get(item.lower(), item)
        if full not in have:
            raise BackendError(
                f"Requested provider was {full}, but available providers are {have}. "
                "Install onnxruntime-gpu (with CUDA/TensorRT libraries) for GPU providers, or use --backend ort-cpu."
            )
        if full not in names:
            names.append(full)
    if CPU not in names:
        names.append(CPU)
    return names


# For graphs without convolutions (the caption graphs): ONNX Runtime's NchwcTransformer only
# rewrites convolution chains, so skipping it changes nothing there, and with ONNX Runtime
# 1.32 it crashes (segmentation fault) building a session of the fp16 CLIP text graph.
CONV_FREE_DISABLED = ("NchwcTransformer",)


class OrtRunner(Runner):
    """Runs one ONNX graph with ONNX Runtime.

    Args:
        model: path to an ``.onnx`` file, or its serialized bytes.
        providers: provider names or aliases in priority order (``("trt", "cuda")``, ``("cpu",)``).
        intra_op_threads: threads inside one operator (None: ONNX Runtime's default, all cores).
        inter_op_threads: threads across independent operators (sequential execution when None).
        spinning: let idle intra-op threads spin; turn off when several sessions share the cores.
        io_binding: bind inputs/outputs explicitly (default: on for GPU providers).
        device_outputs: outputs kept on the device as OrtValues (GPU providers with IOBinding only).
        provider_options: extra options per full provider name.
        device_id: CUDA device for GPU providers.
        disabled_optimizers: ONNX Runtime graph transformers to skip (see
            :data:`CONV_FREE_DISABLED`).
    """

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        providers: Sequence[str] = ("cpu",),
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        spinning: bool = True,
        io_binding: bool | None = None,
        device_outputs: Sequence[str] = (),
        provider_options: dict[str, dict[str, Any]] | None = None,
        device_id: int = 0,
        name: str | None = None,
        disabled_optimizers: Sequence[str] = (),
    ) -> None:
        label = name or (Path(model).stem if not isinstance(model, bytes) else "onnx")
        super().__init__(label)
        self.model = model
        self.requested_providers = tuple(providers)
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.spinning = spinning
        self.io_binding = io_binding
        self.device_outputs = tuple(device_outputs)
        self.provider_options = dict(provider_options or {})
        self.device_id = device_id
        self.disabled_optimizers = tuple(disabled_optimizers)
        self.session: Any = None
        self.providers: list[str] = []

    @property
    def frame_plan(self) -> str:  # type: ignore[override]
        """``async`` on GPU providers (the device plan issues and waits), ``host`` on the CPU."""
        return "async" if self.device_kind == "cuda" else "host"

    @property
    def device_kind(self) -> str:
        """``cuda`` when the session runs (or, before activation, is asked to run) on a GPU provider."""
        names = self.providers or [PROVIDER_ALIASES.get(p.lower(), p) for p in self.requested_providers]
        return "cuda" if any(p in GPU_PROVIDERS for p in names) else "cpu"

    # ------------------------------------------------------------------ lifecycle
    def activate_impl(self) -> None:
        import onnxruntime as ort

        if not isinstance(self.model, bytes) and not Path(self.model).is_file():
            raise BackendError(f"ONNX file not found: {self.model}.")
        providers = resolve_providers(self.requested_providers)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if self.intra_op_threads:
            opts.intra_op_num_threads = int(self.intra_op_threads)
        if self.inter_op_threads:
            opts.inter_op_num_threads = int(self.inter_op_threads)
            opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        else:
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        options = [self._options_for(p) for p in providers]
        source = self.model if isinstance(self.model, bytes) else os.fspath(self.model)
        try:
            self.session = ort.InferenceSession(source, sess_options=opts, providers=providers, provider_options=options,
                                                **({"disabled_optimizers": list(self.disabled_optimizers)}
                                                   if self.disabled_optimizers else {}))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
            raise BackendError(
                f"ONNX Runtime could not load '{self.name}' with {providers}: {str(exc).splitlines()[0]}"
            ) from exc
        self.providers = list(self.session.get_providers())
        gpu = any(p in GPU_PROVIDERS for p in self.providers)
        if self.io_binding is None:
            self.io_binding = gpu
        if self.device_outputs and not gpu:
            self.device_outputs = ()  # nothing to keep on a device that is the host
        log.debug("ORT runner %s on %s (io_binding=%s)", self.name, self.providers, self.io_binding)

    def _options_for(self, provider: str) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if provider in GPU_PROVIDERS:
            opts["device_id"] = str(self.device_id)
        opts.update(self.provider_options.get(provider, {}))
        return opts

    def deactivate_impl(self) -> None:
        self.session = None

    # ------------------------------------------------------------------ metadata
    def get_input_metadata_impl(self) -> list[TensorSpec]:
        return [_meta(i) for i in self.session.get_inputs()]

    def get_output_metadata_impl(self) -> list[TensorSpec]:
        return [_meta(o) for o in self.session.get_outputs()]

    # ------------------------------------------------------------------ inference
    def infer_impl(self, feed: dict[str, Any]) -> dict[str, Any]:
        try:
            if self.io_binding:
                return self._run_bound(feed)
            names = [o.name for o in self.session.get_outputs()]
            values = self.session.run(names, {k: _host(v) for k, v in feed.items()})
            return dict(zip(names, values))
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - surface ORT failures as one error type
            raise BackendError(f"ONNX Runtime failed running '{self.name}': {str(exc).splitlines()[0]}") from exc

    def _run_bound(self, feed: dict[str, Any]) -> dict[str, Any]:
        binding = self.session.io_binding()
        for name, value in feed.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
            else:
                binding.bind_ortvalue_input(name, value)
        device = "cuda" if any(p in GPU_PROVIDERS for p in self.providers) else "cpu"
        names = [o.name for o in self.session.get_outputs()]
        for name in names:
            if name in self.device_outputs:
                binding.bind_output(name, device, self.device_id)
            else:
                binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        values = binding.get_outputs()
        out = {n: (v if n in self.device_outputs else v.numpy()) for n, v in zip(names, values)}
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        return out


def _meta(node: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else (str(d) if d else None) for d in node.shape)
    return TensorSpec(node.name, ort_type_to_numpy(node.type), shape)


def _host(value: Any) -> Any:
    """OrtValue -> numpy for the plain ``session.run`` path."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "numpy"):
        return value.numpy()
    return value
