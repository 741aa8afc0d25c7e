"""A short matrix-multiply probe of what this machine can compute, for bench's "fraction of peak".

On the CPU: numpy's float32 matmul (the BLAS ONNX Runtime's own kernels are compared with),
square matrices, the best of a few repeats after a warm-up. On a CUDA GPU (when PyTorch is
installed): a half-precision matmul on the device, timed with CUDA events. Returns
multiply-accumulates per second. ``bench --peak`` overrides the probe with a known figure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Peak:
    """A measured (or given) compute rate."""

    device: str  # "cpu" or the GPU's name
    dtype: str  # "float32" (CPU) or "float16" (GPU)
    macs_per_s: float
    how: str  # "probe: 1024^3 matmul, best of 5" or "given with --peak"

    def fraction(self, macs: float, seconds: float) -> float:
        """The share of this peak that ``macs`` in ``seconds`` achieved."""
        return (macs / seconds) / self.macs_per_s if seconds > 0 and self.macs_per_s > 0 else float("nan")


def cpu_peak(n: int = 1024, repeats: int = 5) -> Peak:
    """float32 matmul rate of numpy's BLAS on all the cores this process may use."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: threads, caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return Peak("cpu", "float32", n ** 3 / best, f"probe: {n}^3 float32 matmul (numpy), best of {repeats}")


def cuda_peak(n: int = 8192, repeats: int = 10) -> Peak | None:
    """float16 matmul rate on CUDA device 0 (None without PyTorch or a GPU)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(repeats):
        start.record()
        a @ b
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return Peak(torch.cuda.get_device_name(0), "float16", n ** 3 / best,
                f"probe: {n}^3 float16 matmul (PyTorch, CUDA events), best of {repeats}")


def given_peak(gmacs: float, device: str = "given") -> Peak:
    """A peak the user knows (``--peak`` in GMAC/s)."""
    return Peak(device, "given", gmacs * 1e9, "given with --peak")
