"""What this machine can run: package versions, ONNX Runtime providers, CUDA, TensorRT.

Everything here is probed lazily and never raises: a missing package is reported as
missing. Used by ``tr2m-edge info`` and by backend selection (``--backend auto``).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any

PACKAGES = (
    "tr2m-edge", "numpy", "torch", "torchvision", "transformers", "open_clip_torch", "onnx",
    "onnxruntime", "onnxruntime-gpu", "onnxscript", "opencv-python-headless", "opencv-python", "typer", "rich",
    "tensorrt", "cuda-python", "polygraphy",
)


@dataclass
class SystemInfo:
    """A snapshot of the inference-relevant facts of this machine."""

    versions: dict[str, str | None] = field(default_factory=dict)
    ort_providers: list[str] = field(default_factory=list)
    torch_cuda: str | None = None  # device name when PyTorch sees a CUDA GPU
    cuda_python: str | None = None  # device count / error via cuda-python
    tensorrt: str | None = None  # version when `import tensorrt` works
    opencv: "OpenCVInfo | None" = None  # the cv2 module's version and build features
    notes: list[str] = field(default_factory=list)


def package_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def ort_providers() -> list[str]:
    try:
        import onnxruntime as ort

        return list(ort.get_available_providers())
    except Exception:  # noqa: BLE001 - probing only
        return []


def tensorrt_version() -> str | None:
    try:
        trt = importlib.import_module("tensorrt")
        return str(trt.__version__)
    except Exception:  # noqa: BLE001 - probing only
        return None


def import_tensorrt(instead: str) -> Any:
    """``import tensorrt``, or a BackendError saying how to get it and what to do ``instead``."""
    from tr2m_edge.errors import BackendError

    try:
        return importlib.import_module("tensorrt")
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        raise BackendError(
            f"TensorRT is not installed ({type(exc).__name__}: {exc}): pip install 'tr2m-edge[gpu]' on an x86_64 "
            f"machine with an NVIDIA GPU, or JetPack's TensorRT on a Jetson (a --system-site-packages venv); {instead}."
        ) from None


def cuda_device_count() -> int:
    """CUDA devices visible through cuda-python's runtime bindings (0 when absent)."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]

        err, count = cudart.cudaGetDeviceCount()
        return int(count) if int(err) == 0 else 0
    except Exception:  # noqa: BLE001 - probing only
        return 0


@dataclass(frozen=True)
class GpuInfo:
    """One CUDA device, as cuda-python reports it."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory: int  # bytes

    @classmethod
    def from_properties(cls, index: int, prop: Any) -> "GpuInfo":
        """From a ``cudaDeviceProp`` (cuda-python's ``cudaGetDeviceProperties``)."""
        raw = prop.name
        name = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return cls(index, name.rstrip("\x00"), (int(prop.major), int(prop.minor)), int(prop.totalGlobalMem))


def gpu_info(index: int = 0) -> GpuInfo | None:
    """CUDA device ``index`` through cuda-python, or None when there is none (never raises)."""
    try:
        from cuda.bindings import runtime as cudart  # type: ignore[import-not-found]

        err, prop = cudart.cudaGetDeviceProperties(index)
        return GpuInfo.from_properties(index, prop) if int(err) == 0 else None
    except Exception:  # noqa: BLE001 - probing only
        return None


@dataclass(frozen=True)
class EngineTarget:
    """A GPU and TensorRT version: what engines were built for, or what a machine has."""

    gpu: str
    compute_capability: str  # "8.7"
    tensorrt: str  # "10.3.0"

    def describe(self) -> str:
        return f"{self.gpu} (sm {self.compute_capability}) / TRT {self.tensorrt}"


def engine_target(index: int = 0) -> EngineTarget | None:
    """The one "which GPU and TensorRT is here" probe: GPU ``index`` and the installed
    TensorRT, or None when either is missing. Used by export (engines are built for it)
    and by the runtime (engines must match it). Never raises."""
    version = tensorrt_version()
    gpu = gpu_info(index) if version is not None else None
    if version is None or gpu is None:
        return None
    major, minor = gpu.compute_capability
    return EngineTarget(gpu.name, f"{major}.{minor}", version)


@dataclass(frozen=True)
class OpenCVInfo:
    """The importable cv2: its version and the build features the runtime depends on."""

    version: str
    file: str  # where cv2 was imported from (a venv wheel, or the system's on a Jetson)
    gstreamer: bool  # cv2.CAP_GSTREAMER pipelines (--source; CSI cameras on a Jetson)
    gui: str  # the highgui backend ("NONE" in opencv-python-headless: no --show window)

    def describe(self) -> str:
        return (f"{self.version} from {self.file}; GStreamer {'yes' if self.gstreamer else 'no'}; "
                f"GUI {self.gui.lower() if self.gui != 'NONE' else 'none (headless)'}")


def build_feature(info: str, name: str) -> str:
    """The value of one ``NAME: VALUE`` line of ``cv2.getBuildInformation()`` ('' when absent)."""
    for line in info.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return ""


def opencv_info() -> OpenCVInfo | None:
    """The importable OpenCV and its GStreamer / GUI support, or None without cv2 (never raises)."""
    try:
        cv2 = importlib.import_module("cv2")
        info = str(cv2.getBuildInformation())
    except Exception:  # noqa: BLE001 - probing only
        return None
    gst = build_feature(info, "GStreamer")
    return OpenCVInfo(str(cv2.__version__), str(getattr(cv2, "__file__", "?")),
                      gst.upper().startswith("YES") or gst[:1].isdigit(), build_feature(info, "GUI") or "NONE")


def collect(with_torch: bool = True) -> SystemInfo:
    info = SystemInfo(versions={p: package_version(p) for p in PACKAGES})
    info.ort_providers = ort_providers()
    info.opencv = opencv_info()
    if info.versions.get("opencv-python") and info.versions.get("opencv-python-headless"):
        info.notes.append("opencv-python and opencv-python-headless are both installed and share the cv2 module: "
                          "keep one (pip uninstall opencv-python-headless for --show windows).")
    if info.versions.get("onnxruntime") and info.versions.get("onnxruntime-gpu"):
        info.notes.append("onnxruntime and onnxruntime-gpu are both installed and share one module, which can lose "
                          "the CUDA provider: pip uninstall -y onnxruntime onnxruntime-gpu, then install one.")
    info.tensorrt = tensorrt_version()
    n = cuda_device_count()
    info.cuda_python = f"{n} device(s)" if n else None
    if with_torch:
        try:
            import torch

            if torch.cuda.is_available():
                info.torch_cuda = torch.cuda.get_device_name(0)
        except ImportError:
            pass  # a runtime install has no PyTorch (the table above says so)
        except Exception as exc:  # noqa: BLE001 - probing only
            info.notes.append(f"torch import failed: {exc}")
    if info.tensorrt is None:
        info.notes.append("TensorRT is not importable: TensorRT engines cannot be built or run here.")
    if not info.torch_cuda and not n:
        info.notes.append("No CUDA GPU visible: GPU backends are unavailable; ONNX Runtime CPU is used.")
    return info
