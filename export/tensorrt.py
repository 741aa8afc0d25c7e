"""``export --trt``: the export, then the runtime's build step on the fresh bundle, plus PyTorch parity.

The engines are built, checked and installed by :func:`tr2m_edge.runtime.build.build_bundle`
(TensorRT alone, no PyTorch: the same step ``tr2m-edge build`` runs on a target), so there
is one path that writes engines. The export adds one check that only it can make: the
engines against the PyTorch model itself (``parity["tensorrt"]``), next to the build's
check against the bundle's fp32 graphs (``parity["tensorrt-<precision>"]``). The bundle
records the GPU and TensorRT version (``Manifest.tensorrt``, from
:func:`tr2m_edge.system.engine_target`) and :func:`tr2m_edge.bundle.check_engine_compat`
refuses a mismatch with a message saying how to rebuild.

What has run on real hardware is stated in the README's GPU section; on the CPU-only
development and CI machines only the compatibility rule and the manifest logic run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from tr2m_edge.config import ModelConfig
from tr2m_edge.parity import ParityReport
from tr2m_edge.progress import StepProgress
from tr2m_edge.runtime.build import BuildResult, build_bundle
from tr2m_edge.runtime.comparator import Reference
from tr2m_edge.runtime.runners.base import Runner
from tr2m_edge.system import EngineTarget

log = logging.getLogger(__name__)


def build_engines(steps: StepProgress, bundle: Path, cfg: ModelConfig, ref: Reference, *, fp16: bool,
                  device: EngineTarget, device_id: int = 0) -> BuildResult:
    """Build, check and install the engines of the bundle being exported (``bundle``: its staging folder).

    Args:
        steps: the export's progress display.
        bundle: the complete (not yet moved into place) bundle folder.
        cfg: the model config.
        ref: the PyTorch reference of the export's parity frame.
        fp16: fp16 engines (else fp32).
        device: the GPU and TensorRT the engines are built for.
        device_id: its CUDA index.
    """
    precision = "fp16" if fp16 else "fp32"

    def vs_pytorch(runners: Mapping[str, Runner]) -> ParityReport:
        from tr2m_edge.runtime.comparator import check_parity

        return check_parity(runners, ref, cfg, precision=precision, backend=f"tensorrt-{device.tensorrt}")

    return build_bundle(bundle, precision=precision, device_id=device_id, steps=steps,
                        extra_checks={"tensorrt": vs_pytorch})
