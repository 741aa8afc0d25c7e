"""The one runner interface every backend implements (after Polygraphy's runners).

A runner wraps one compiled graph (an ONNX Runtime session, a TensorRT engine, a PyTorch
module) behind ``activate / get_input_metadata / infer / deactivate``. The base class
checks input names, dtypes and shapes against the graph's metadata (the contract's
:class:`~tr2m_edge.contract.TensorSpec`) and times each call; subclasses only fill in the
``*_impl`` methods. A runner class also declares which frame plan the executor's device
plan uses for it (:attr:`Runner.frame_plan`).

Values passed to :meth:`Runner.infer` are numpy arrays, or the backend's own device
arrays (``torch.Tensor``, ``onnxruntime.OrtValue``) so that device-resident
intermediates can move between stages without host copies.
"""

from __future__ import annotations

import abc
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from tr2m_edge.contract import TensorSpec
from tr2m_edge.errors import BackendError, InputError

log = logging.getLogger(__name__)

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(bool)": "bool", "tensor(uint16)": "uint16",
}


def ort_type_to_numpy(type_name: str) -> str:
    """ONNX Runtime's ``tensor(float)`` spelling -> numpy dtype name (``float32``)."""
    return _ORT_TYPES.get(type_name, type_name)


def value_info(value: Any) -> tuple[tuple[int, ...], str]:
    """(shape, numpy dtype name) of a numpy array, torch tensor or OrtValue, without importing torch."""
    if isinstance(value, np.ndarray):
        return tuple(value.shape), value.dtype.name
    module = type(value).__module__
    if module.startswith("torch"):
        return tuple(int(d) for d in value.shape), str(value.dtype).replace("torch.", "")
    if hasattr(value, "data_type") and callable(getattr(value, "shape", None)):  # onnxruntime.OrtValue
        return tuple(int(d) for d in value.shape()), ort_type_to_numpy(value.data_type())
    raise InputError(
        f"Runner inputs must be numpy arrays (or torch tensors / OrtValues); got {type(value).__name__}."
    )


class Runner(abc.ABC):
    """Runs one graph on named arrays. Use as a context manager or call activate/deactivate."""

    frame_plan = "host"  # the device plan's frame work for these runners (see tr2m_edge.runtime.plans)

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_active = False
        self.last_inference_ms = 0.0
        self._inputs: dict[str, TensorSpec] | None = None
        self._outputs: dict[str, TensorSpec] | None = None
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ public API
    def activate(self) -> "Runner":
        """Load the graph (sessions, engines, device buffers). Idempotent."""
        if self.is_active:
            log.debug("runner %s is already active", self.name)
            return self
        self.activate_impl()
        self.is_active = True
        try:
            self._inputs = {m.name: m for m in self.get_input_metadata_impl()}
            self._outputs = {m.name: m for m in self.get_output_metadata_impl()}
        except BaseException:
            self.deactivate()
            raise
        return self

    def deactivate(self) -> None:
        """Release everything :meth:`activate` acquired. Idempotent."""
        if not self.is_active:
            return
        try:
            if self._worker is not None:
                self._worker.shutdown(wait=True)  # issued calls finish before the graph goes
                self._worker = None
            self.deactivate_impl()
        finally:
            self.is_active = False

    @property
    def device_kind(self) -> str:
        """Where the graph computes: ``"cpu"`` (the host) or ``"cuda"`` (an NVIDIA GPU).

        The executor picks its plan from this: one host thread per stage for CPU runners,
        one thread issuing all device work (double-buffered) for GPU runners. Known
        without activating the runner.
        """
        return "cpu"

    def get_input_metadata(self) -> dict[str, TensorSpec]:
        """Expected inputs, by name."""
        self._require_active()
        return dict(self._inputs or {})

    def get_output_metadata(self) -> dict[str, TensorSpec]:
        """Produced outputs, by name."""
        self._require_active()
        return dict(self._outputs or {})

    def infer(self, feed: Mapping[str, Any], check_inputs: bool = True) -> dict[str, Any]:
        """Run the graph on named inputs; returns named outputs.

        Raises:
            InputError: a name is missing or unknown, or a dtype/shape does not match.
            BackendError: the runner is not active or the backend failed.
        """
        self._require_active()
        if check_inputs:
            self.check_inputs(feed)
        start = time.perf_counter()
        out = self.infer_impl(dict(feed))
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        return out

    def issue(self, feed: Mapping[str, Any]) -> "Issued":
        """Start :meth:`infer` on this runner's own worker thread and return at once.

        Calls on one runner run in the order they were issued; calls on different runners
        run concurrently (ONNX Runtime and TensorRT release the GIL while they compute, and
        each TensorRT runner computes on its own CUDA stream). A value in ``feed`` may be
        another call's pending output (:meth:`Issued.output`): the worker waits for it
        first, so the caller never blocks. :meth:`Issued.wait` returns the outputs.
        """
        self._require_active()
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"tr2m-{self.name}")
        call = Issued(self)
        call.future = self._worker.submit(call.run, dict(feed))
        return call

    def check_inputs(self, feed: Mapping[str, Any]) -> None:
        """Validate names, dtypes and shapes of ``feed`` against the input metadata."""
        expected = self.get_input_metadata()
        wanted = "; ".join(m.describe() for m in expected.values())
        missing = [n for n in expected if n not in feed]
        unknown = [n for n in feed if n not in expected]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing input(s) {', '.join(repr(n) for n in missing)}")
            if unknown:
                parts.append(f"unexpected input(s) {', '.join(repr(n) for n in unknown)}")
            raise InputError(f"Runner '{self.name}': {' and '.join(parts)}. It expects: {wanted}.")
        for name, meta in expected.items():
            shape, dtype = value_info(feed[name])
            if dtype != meta.dtype:
                raise InputError(
                    f"Runner '{self.name}': input '{name}' has dtype {dtype}, expected {meta.dtype}. "
                    f"Convert it first (e.g. array.astype('{meta.dtype}'))."
                )
            if len(shape) != len(meta.shape):
                raise InputError(
                    f"Runner '{self.name}': input '{name}' has shape {shape} ({len(shape)} dims), "
                    f"expected {meta.describe()}."
                )
            for got, want in zip(shape, meta.shape):
                if isinstance(want, int) and want >= 0 and got != want:
                    raise InputError(
                        f"Runner '{self.name}': input '{name}' has shape {shape}, expected {meta.describe()}."
                    )

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def __del__(self) -> None:  # best effort: never leak sessions or device memory
        try:
            if getattr(self, "is_active", False):
                self.deactivate()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _require_active(self) -> None:
        if not self.is_active:
            raise BackendError(
                f"Runner '{self.name}' is not active: call activate() first or use it in a `with` block."
            )

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def activate_impl(self) -> None:
        """Create sessions / engines / buffers."""

    @abc.abstractmethod
    def get_input_metadata_impl(self) -> list[TensorSpec]:
        """Inputs of the active graph."""

    @abc.abstractmethod
    def get_output_metadata_impl(self) -> list[TensorSpec]:
        """Outputs of the active graph."""

    @abc.abstractmethod
    def infer_impl(self, feed: dict[str, Any]) -> dict[str, Any]:
        """Run on validated inputs."""

    @abc.abstractmethod
    def deactivate_impl(self) -> None:
        """Free what activate_impl created."""


@contextlib.contextmanager
def activated(runners: Mapping[str, Runner]) -> Iterator[dict[str, Runner]]:
    """Activate every runner for a ``with`` block and deactivate them all after (also on error)."""
    try:
        yield {name: runner.activate() for name, runner in runners.items()}
    finally:
        for runner in runners.values():
            runner.deactivate()


class Pending:
    """One named output of an issued call, as a feed value for another runner's call."""

    def __init__(self, call: "Issued", name: str) -> None:
        self.call, self.name = call, name

    def resolve(self) -> Any:
        return self.call.wait()[self.name]


class Issued:
    """A call issued with :meth:`Runner.issue`: :meth:`wait` blocks until its outputs exist.

    ``start`` and ``end`` are the ``time.perf_counter()`` values around the graph's own
    computation (after its inputs were ready), for per-stage timings.
    """

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.future: concurrent.futures.Future | None = None
        self.start = self.end = 0.0

    def run(self, feed: dict[str, Any]) -> dict[str, Any]:
        ready = {k: (v.resolve() if isinstance(v, Pending) else v) for k, v in feed.items()}
        self.start = time.perf_counter()
        try:
            return self.runner.infer(ready)
        finally:
            self.end = time.perf_counter()

    def output(self, name: str) -> Pending:
        """This call's output ``name``, to feed another call before it is computed."""
        return Pending(self, name)

    def wait(self) -> dict[str, Any]:
        """The outputs (re-raises the call's error)."""
        assert self.future is not None
        return self.future.result()

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1e3
