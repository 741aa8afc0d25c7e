"""CUDA memory and streams through cuda-python (``cuda.bindings.runtime``), no PyTorch.

NVIDIA's maintained bindings, used by TensorRT's own samples; they install on machines
without a driver (calls then fail with a clear error), unlike pycuda. Provides what the
TensorRT runner and the GPU check need: streams, events, device buffers and pinned
(page-locked) host buffers exposed as numpy arrays, and async copies between them.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from tr2m_edge.errors import BackendError
from tr2m_edge.system import GpuInfo, cuda_device_count


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]
    except ImportError:
        raise BackendError(
            "cuda-python is not installed (needed for TensorRT buffers and streams): pip install 'tr2m-edge[gpu]' "
            "(or pip install cuda-python)."
        ) from None
    return cudart


def check(result: Any, what: str) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` tuple; raise BackendError naming the call on failure."""
    cudart = _cudart()
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(err) != int(cudart.cudaError_t.cudaSuccess):
        _, name = cudart.cudaGetErrorName(err)
        _, text = cudart.cudaGetErrorString(err)
        raise BackendError(
            f"CUDA call {what} failed: {name.decode()} ({text.decode()}). "
            "Check that an NVIDIA driver and GPU are present (`nvidia-smi`)."
        )
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def device_info(index: int = 0) -> GpuInfo:
    """Name, compute capability and memory of CUDA device ``index`` (BackendError without one)."""
    return GpuInfo.from_properties(index, check(_cudart().cudaGetDeviceProperties(index),
                                                f"cudaGetDeviceProperties({index})"))


class Stream:
    """A non-blocking CUDA stream."""

    def __init__(self) -> None:
        cudart = _cudart()
        self.handle = check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")

    @property
    def ptr(self) -> int:
        """The raw ``cudaStream_t`` as an int (what TensorRT's ``execute_async_v3`` takes)."""
        return int(self.handle)

    def synchronize(self) -> None:
        check(_cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def free(self) -> None:
        if self.handle is not None:
            check(_cudart().cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None


class Event:
    """A CUDA event, for ordering streams and timing on the device."""

    def __init__(self) -> None:
        self.handle = check(_cudart().cudaEventCreate(), "cudaEventCreate")

    def record(self, stream: Stream) -> None:
        check(_cudart().cudaEventRecord(self.handle, stream.handle), "cudaEventRecord")

    def synchronize(self) -> None:
        check(_cudart().cudaEventSynchronize(self.handle), "cudaEventSynchronize")

    def elapsed_ms(self, start: "Event") -> float:
        """Milliseconds from ``start`` to this event (both recorded and complete)."""
        return float(check(_cudart().cudaEventElapsedTime(start.handle, self.handle), "cudaEventElapsedTime"))

    def free(self) -> None:
        if self.handle is not None:
            check(_cudart().cudaEventDestroy(self.handle), "cudaEventDestroy")
            self.handle = None


def stream_wait(stream: Stream, event: Event) -> None:
    """Make ``stream`` wait (on the device) until ``event`` has completed."""
    check(_cudart().cudaStreamWaitEvent(stream.handle, event.handle, 0), "cudaStreamWaitEvent")


class _GrowingBuffer:
    """Memory from one cudart allocator pair (``_ALLOC`` / ``_FREE``) that grows on demand."""

    _ALLOC = ""
    _FREE = ""

    def __init__(self, nbytes: int = 0) -> None:
        self.ptr = 0
        self.nbytes = 0
        if nbytes:
            self.reserve(nbytes)

    def reserve(self, nbytes: int) -> None:
        if nbytes <= self.nbytes:
            return
        self.free()
        self.ptr = int(check(getattr(_cudart(), self._ALLOC)(nbytes), f"{self._ALLOC}({nbytes})"))
        self.nbytes = nbytes

    def free(self) -> None:
        if self.ptr:
            check(getattr(_cudart(), self._FREE)(self.ptr), self._FREE)
        self.ptr, self.nbytes = 0, 0


class DeviceBuffer(_GrowingBuffer):
    """``nbytes`` of device memory; grows on demand."""

    _ALLOC, _FREE = "cudaMalloc", "cudaFree"


class PinnedBuffer(_GrowingBuffer):
    """Page-locked host memory viewed as a numpy array (fast, truly async copies); grows on demand."""

    _ALLOC, _FREE = "cudaMallocHost", "cudaFreeHost"

    def view(self, shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
        """A numpy array of ``shape``/``dtype`` over the first bytes of this buffer."""
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        self.reserve(max(nbytes, 1))
        raw = (ctypes.c_byte * nbytes).from_address(self.ptr)
        return np.frombuffer(raw, dtype=dt, count=nbytes // dt.itemsize).reshape(shape)


def copy_to_device(dst: DeviceBuffer, src: np.ndarray, stream: Stream) -> None:
    """Async host->device copy of a (preferably pinned) contiguous array."""
    cudart = _cudart()
    dst.reserve(src.nbytes)
    check(
        cudart.cudaMemcpyAsync(dst.ptr, src.ctypes.data, src.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.handle),
        "cudaMemcpyAsync(HostToDevice)",
    )


def copy_to_host(dst: np.ndarray, src: DeviceBuffer, stream: Stream) -> None:
    """Async device->host copy into a contiguous (preferably pinned) array."""
    cudart = _cudart()
    if not dst.flags.c_contiguous or dst.nbytes > src.nbytes:
        raise BackendError(f"copy_to_host: destination must be contiguous and at most {src.nbytes} bytes.")
    check(
        cudart.cudaMemcpyAsync(dst.ctypes.data, src.ptr, dst.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.handle),
        "cudaMemcpyAsync(DeviceToHost)",
    )


def has_cuda_device() -> bool:
    """True when cuda-python sees at least one CUDA device (never raises)."""
    return cuda_device_count() > 0
