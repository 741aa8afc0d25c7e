"""Backend choice: ``auto | trt | ort-trt | ort-cuda | ort-cpu | torch``, with the reason why.

``auto`` prefers, in order: native TensorRT engines (when the bundle has engines built
for this GPU and TensorRT), ONNX Runtime's TensorRT provider, its CUDA provider,
PyTorch on CUDA (only when a checkpoint is given: bundles hold no PyTorch weights), and
finally ONNX Runtime on the CPU, which is always there. Probing uses cuda-python and
onnxruntime only; PyTorch is imported only when a checkpoint makes it a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

from tr2m_edge.bundle import Manifest, check_engine_compat
from tr2m_edge.errors import BackendError, BundleError
from tr2m_edge.runtime.runners.onnxrt import CPU, CUDA, TENSORRT, available_providers
from tr2m_edge.system import cuda_device_count, engine_target, tensorrt_version

BACKENDS = ("auto", "trt", "ort-trt", "ort-cuda", "ort-cpu", "torch")
ORT_PROVIDERS = {"ort-trt": ["trt", "cuda"], "ort-cuda": ["cuda"], "ort-cpu": ["cpu"]}


@dataclass(frozen=True)
class BackendChoice:
    """The backend a pipeline runs on and why it was picked."""

    name: str  # trt | ort-trt | ort-cuda | ort-cpu | torch
    reason: str
    device: str = "cpu"  # cpu | cuda

    @property
    def is_ort(self) -> bool:
        return self.name.startswith("ort-")

    @property
    def on_gpu(self) -> bool:
        return self.device == "cuda"


def _has_cuda() -> bool:
    return cuda_device_count() > 0


def _trt_problem(manifest: Manifest | None) -> str | None:
    """Why native TensorRT cannot run this bundle here (None when it can)."""
    if tensorrt_version() is None:
        return "TensorRT is not installed"
    here = engine_target()
    if here is None:
        return "no CUDA GPU is visible"
    if manifest is None or not any(f.format == "engine" for f in manifest.files):
        return "the bundle has no TensorRT engines (export with --trt on this machine)"
    try:
        check_engine_compat(manifest, here)
    except BundleError as exc:
        return str(exc)
    return None


def _ort_problem(name: str) -> str | None:
    have = available_providers()
    if not have:
        return "onnxruntime is not installed"
    need = {"ort-trt": TENSORRT, "ort-cuda": CUDA, "ort-cpu": CPU}[name]
    if need not in have:
        short = ", ".join(p.replace("ExecutionProvider", "") for p in have)
        return f"onnxruntime has no {need} (it has: {short})"
    if name != "ort-cpu" and not _has_cuda():
        return "no CUDA GPU is visible"
    return None


def _torch_problem(has_checkpoint: bool, need_cuda: bool) -> str | None:
    if not has_checkpoint:
        return "it needs --checkpoint (bundles hold no PyTorch weights)"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed"
    if need_cuda and not torch.cuda.is_available():
        return "PyTorch sees no CUDA GPU (ONNX Runtime is faster on the CPU)"
    return None


def choose_backend(requested: str, manifest: Manifest | None, *, has_checkpoint: bool = False) -> BackendChoice:
    """Resolve ``requested`` into a runnable backend.

    Raises:
        BackendError: an explicitly requested backend cannot run here (message says why
            and what to use instead) or the name is unknown.
        BundleError: TensorRT engines in the bundle were built for another GPU/TensorRT.
    """
    requested = requested.lower()
    if requested not in BACKENDS:
        raise BackendError(f"Unknown backend '{requested}'. Available: {', '.join(BACKENDS)}.")
    if requested == "trt":
        problem = _trt_problem(manifest)
        if problem:
            if "built" in problem:
                raise BundleError(problem)
            raise BackendError(f"Backend trt is unavailable: {problem}. Use --backend auto to pick what works here.")
        return BackendChoice("trt", "requested", "cuda")
    if requested in ORT_PROVIDERS:
        problem = _ort_problem(requested)
        if problem:
            raise BackendError(f"Backend {requested} is unavailable: {problem}. Use --backend auto or ort-cpu.")
        return BackendChoice(requested, "requested", "cpu" if requested == "ort-cpu" else "cuda")
    if requested == "torch":
        problem = _torch_problem(has_checkpoint, need_cuda=False)
        if problem:
            raise BackendError(f"Backend torch is unavailable: {problem}.")
        import torch

        return BackendChoice("torch", "requested", "cuda" if torch.cuda.is_available() else "cpu")
    # auto
    skipped: list[str] = []
    problem = _trt_problem(manifest)
    if problem is None:
        return BackendChoice("trt", "auto: native TensorRT engines built for this GPU are the fastest path", "cuda")
    skipped.append(f"trt ({problem})")
    for name in ("ort-trt", "ort-cuda"):
        problem = _ort_problem(name)
        if problem is None:
            why = "; ".join(skipped)
            return BackendChoice(name, f"auto: {name} is the fastest available" + (f" (skipped {why})" if why else ""), "cuda")
        skipped.append(f"{name} ({problem})")
    problem = _torch_problem(has_checkpoint, need_cuda=True)
    if problem is None:
        return BackendChoice("torch", f"auto: PyTorch on CUDA (skipped {'; '.join(skipped)})", "cuda")
    skipped.append(f"torch ({problem})")
    return BackendChoice("ort-cpu", f"auto: ONNX Runtime on the CPU; skipped {'; '.join(skipped)}", "cpu")
