"""Native TensorRT engine runner (TensorRT 10 and 11 named-tensor API), buffers via cuda-python.

Per call: ``set_input_shape`` for every input, pinned host staging + async H2D copies,
``set_tensor_address`` for every I/O tensor, ``execute_async_v3`` on the runner's own CUDA
stream, async D2H copies, one stream synchronise. Buffers grow on demand and are reused.
TensorRT is imported only when a runner is activated, so this module imports anywhere.

Engines are not portable across GPUs or TensorRT versions; the backend choice compares a
bundle's engine metadata with :func:`tr2m_edge.system.engine_target` (rule: core
``check_engine_target``) before the first frame.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

import tr2m_edge.runtime.runners.cuda as cuda
from tr2m_edge.contract import TensorSpec
from tr2m_edge.errors import BackendError
from tr2m_edge.runtime.runners.base import Runner
from tr2m_edge.system import import_tensorrt

log = logging.getLogger(__name__)


class TrtRunner(Runner):
    """Runs a serialized TensorRT engine (``*.engine``) on the GPU.

    Args:
        engine: path to the engine file, or its bytes.
        device_id: CUDA device to run on.
    """

    frame_plan = "async"  # computes on its own CUDA stream: the device plan issues and waits (AsyncFramePlan)

    def __init__(self, engine: str | Path | bytes, *, device_id: int = 0, name: str | None = None) -> None:
        super().__init__(name or (Path(engine).stem if not isinstance(engine, bytes) else "engine"))
        self.engine_source = engine
        self.device_id = device_id
        self._trt: Any = None
        self.engine: Any = None
        self.context: Any = None
        self.stream: cuda.Stream | None = None
        self._host: dict[str, cuda.PinnedBuffer] = {}
        self._device: dict[str, cuda.DeviceBuffer] = {}
        self._io: list[tuple[str, bool]] = []  # (name, is_input)

    @property
    def device_kind(self) -> str:
        """TensorRT engines always run on the GPU."""
        return "cuda"

    def activate_impl(self) -> None:
        trt = self._trt = import_tensorrt("otherwise pick --backend ort-cuda / ort-cpu")
        data = self.engine_source if isinstance(self.engine_source, bytes) else self._read()
        cuda.check(cuda._cudart().cudaSetDevice(self.device_id), f"cudaSetDevice({self.device_id})")
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        self.engine = runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise BackendError(
                f"TensorRT {trt.__version__} could not deserialize engine '{self.name}': it was built by another "
                "TensorRT version or for another GPU. Rebuild it on this machine."
            )
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"TensorRT could not create an execution context for '{self.name}' (out of GPU memory?).")
        self.stream = cuda.Stream()
        self._io = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            self._io.append((name, self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT))
            self._host[name] = cuda.PinnedBuffer()
            self._device[name] = cuda.DeviceBuffer()

    def _read(self) -> bytes:
        path = Path(self.engine_source)  # type: ignore[arg-type]
        if not path.is_file():
            raise BackendError(f"TensorRT engine not found: {path}.")
        return path.read_bytes()

    def _meta(self, want_input: bool) -> list[TensorSpec]:
        trt = self._trt
        metas = []
        for name, is_input in self._io:
            if is_input != want_input:
                continue
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name))).name
            shape = tuple(int(d) if int(d) >= 0 else None for d in self.engine.get_tensor_shape(name))
            metas.append(TensorSpec(name, dtype, shape))
        return metas

    def get_input_metadata_impl(self) -> list[TensorSpec]:
        return self._meta(True)

    def get_output_metadata_impl(self) -> list[TensorSpec]:
        return self._meta(False)

    def infer_impl(self, feed: dict[str, Any]) -> dict[str, Any]:
        stream = self.stream
        if stream is None:
            raise BackendError(f"Runner '{self.name}' has no CUDA stream; activate it first.")
        for name, is_input in self._io:
            if not is_input:
                continue
            array = np.asarray(feed[name])
            if not self.context.set_input_shape(name, tuple(array.shape)):
                raise BackendError(
                    f"TensorRT engine '{self.name}' rejected shape {array.shape} for input '{name}' "
                    "(outside its optimization profile). Re-export with a profile that covers it."
                )
            staged = self._host[name].view(array.shape, array.dtype)
            np.copyto(staged, array)
            cuda.copy_to_device(self._device[name], staged, stream)
            self.context.set_tensor_address(name, self._device[name].ptr)
        outputs: dict[str, np.ndarray] = {}
        for name, is_input in self._io:
            if is_input:
                continue
            shape = tuple(int(d) for d in self.context.get_tensor_shape(name))
            dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))
            host = self._host[name].view(shape, dtype)
            self._device[name].reserve(max(host.nbytes, 1))
            self.context.set_tensor_address(name, self._device[name].ptr)
            outputs[name] = host
        if not self.context.execute_async_v3(stream.ptr):
            raise BackendError(f"TensorRT execute_async_v3 failed for '{self.name}'; see the TensorRT log above.")
        for name, host in outputs.items():
            cuda.copy_to_host(host, self._device[name], stream)
        stream.synchronize()
        # The pinned buffers are reused by the next call: hand out copies.
        return {name: host.copy() for name, host in outputs.items()}

    def deactivate_impl(self) -> None:
        for buf in list(self._host.values()) + list(self._device.values()):
            buf.free()
        self._host.clear()
        self._device.clear()
        if self.stream is not None:
            self.stream.free()
            self.stream = None
        self.context = None
        self.engine = None
