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
from tr2m_edge.errors import BackendError, BundleError, ConfigError
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


def _gpu_problem(device_id: int) -> str | None:
    """Why CUDA device ``device_id`` cannot be used (None when it can)."""
    count = cuda_device_count()
    if count == 0:
        return "no CUDA GPU is visible"
    if device_id >= count:
        return f"there is no GPU {device_id} (this machine has {count}: --device 0..{count - 1})"
    return None


def _trt_problem(manifest: Manifest | None, device_id: int = 0) -> str | None:
    """Why native TensorRT cannot run this bundle here (None when it can)."""
    if tensorrt_version() is None:
        return "TensorRT is not installed"
    here = engine_target(device_id)
    if here is None:
        return _gpu_problem(device_id) or "no CUDA GPU is visible"
    if manifest is None or not any(f.format == "engine" for f in manifest.files):
        return "the bundle has no TensorRT engines (build them here: tr2m-edge build BUNDLE)"
    try:
        check_engine_compat(manifest, here)
    except BundleError as exc:
        return str(exc)
    return None


def _ort_problem(name: str, device_id: int = 0) -> str | None:
    have = available_providers()
    if not have:
        return "onnxruntime is not installed"
    need = {"ort-trt": TENSORRT, "ort-cuda": CUDA, "ort-cpu": CPU}[name]
    if need not in have:
        short = ", ".join(p.replace("ExecutionProvider", "") for p in have)
        return f"onnxruntime has no {need} (it has: {short})"
    if name != "ort-cpu":
        return _gpu_problem(device_id)
    return None


def _torch_problem(has_checkpoint: bool, need_cuda: bool) -> str | None:
    if not has_checkpoint:
        return "it needs --checkpoint (bundles hold no PyTorch weights)"
    try:
        import torch
    except ImportError:
        return "PyTorch is not installed (pip install 'tr2m-edge[export]')"
    if need_cuda and not torch.cuda.is_available():
        return "PyTorch sees no CUDA GPU (ONNX Runtime is faster on the CPU)"
    return None


def _cpu_backend(requested: str, has_checkpoint: bool) -> BackendChoice:
    """The backend for ``--device cpu``."""
    if requested in ("trt", "ort-trt", "ort-cuda"):
        raise BackendError(f"Backend {requested} runs on a GPU, but --device cpu asks for the CPU: drop one of the two.")
    if requested == "torch":
        problem = _torch_problem(has_checkpoint, need_cuda=False)
        if problem:
            raise BackendError(f"Backend torch is unavailable: {problem}.")
        return BackendChoice("torch", "requested, on the CPU (--device cpu)", "cpu")
    problem = _ort_problem("ort-cpu")
    if problem:
        raise BackendError(f"Backend ort-cpu is unavailable: {problem}.")
    return BackendChoice("ort-cpu", "requested" if requested == "ort-cpu" else "auto: --device cpu", "cpu")


def resolve_device(device: str | int | None) -> int | None:
    """The ``--device`` option: ``auto`` (or None) -> 0 (GPU 0 when there is one, else the CPU,
    as the backend choice decides), ``cpu`` -> None, ``N`` or ``cuda:N`` -> N, checked to exist.

    Raises:
        ConfigError: not a device name.
        BackendError: GPU N is not there.
    """
    text = "auto" if device is None else str(device).strip().lower()
    if text == "auto":
        return 0
    if text == "cpu":
        return None
    digits = text.removeprefix("cuda").removeprefix(":") or "0"
    if not digits.isdigit():
        raise ConfigError(f"--device {device!r} is not a device: give auto, cpu, a GPU index (0, 1, ...) or cuda:N.")
    index = int(digits)
    problem = _gpu_problem(index)
    if problem:
        raise BackendError(f"--device {device}: {problem}. Use --device cpu (or auto) to run on the CPU.")
    return index


def choose_backend(requested: str, manifest: Manifest | None, *, has_checkpoint: bool = False,
                   device_id: int | None = 0) -> BackendChoice:
    """Resolve ``requested`` into a runnable backend on GPU ``device_id`` (None: the CPU only).

    Raises:
        BackendError: an explicitly requested backend cannot run here (message says why
            and what to use instead) or the name is unknown.
        BundleError: TensorRT engines in the bundle were built for another GPU/TensorRT.
    """
    requested = requested.lower()
    if requested not in BACKENDS:
        raise BackendError(f"Unknown backend '{requested}'. Available: {', '.join(BACKENDS)}.")
    if device_id is None:
        return _cpu_backend(requested, has_checkpoint)
    if requested == "trt":
        problem = _trt_problem(manifest, device_id)
        if problem:
            if "built" in problem:
                raise BundleError(problem)
            raise BackendError(f"Backend trt is unavailable: {problem}. Use --backend auto to pick what works here.")
        return BackendChoice("trt", "requested", "cuda")
    if requested in ORT_PROVIDERS:
        problem = _ort_problem(requested, device_id)
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
    problem = _trt_problem(manifest, device_id)
    if problem is None:
        return BackendChoice("trt", "auto: native TensorRT engines built for this GPU are the fastest path", "cuda")
    skipped.append(f"trt ({problem})")
    for name in ("ort-trt", "ort-cuda"):
        problem = _ort_problem(name, device_id)
        if problem is None:
            why = "; ".join(skipped)
            return BackendChoice(name, f"auto: {name} is the fastest available" + (f" (skipped {why})" if why else ""), "cuda")
        skipped.append(f"{name} ({problem})")
    problem = _torch_problem(has_checkpoint, need_cuda=True)
    if problem is None:
        return BackendChoice("torch", f"auto: PyTorch on CUDA (skipped {'; '.join(skipped)})", "cuda")
    skipped.append(f"torch ({problem})")
    return BackendChoice("ort-cpu", f"auto: ONNX Runtime on the CPU; skipped {'; '.join(skipped)}", "cpu")
