"""Achieved compute per component for ``bench``: the bundle's MAC counts over measured stage times.

The MACs come from the manifest (counted at export, :class:`tr2m_edge.bundle.MacRecord`:
the runtime has no PyTorch to count them); the peak from :mod:`tr2m_edge.runtime.peak`
(a short matmul probe of the device the stages ran on) or from ``--peak``.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from tr2m_edge.bundle import MacRecord
from tr2m_edge.errors import ConfigError
from tr2m_edge.runtime.peak import Peak, cpu_peak, cuda_peak, given_peak

log = logging.getLogger(__name__)


def device_peak(device: str, peak_gflops: float | None = None) -> Peak | None:
    """The peak to compare with: ``peak_gflops`` (GFLOP/s, as datasheets quote it: 2 FLOPs per MAC)
    when given, else a probe of ``device`` (``cpu`` or ``cuda``); None when no probe can run.

    Raises:
        ConfigError: a non-positive ``peak_gflops``.
    """
    if peak_gflops is not None:
        if not peak_gflops > 0:
            raise ConfigError(f"--peak must be a positive GFLOP/s figure; got {peak_gflops}.")
        return given_peak(peak_gflops / 2.0)
    if device == "cuda":
        peak = cuda_peak()
        if peak is None:
            log.warning("no CUDA matmul probe without PyTorch: give the GPU's figure with --peak GFLOPS")
        return peak
    return cpu_peak()


def component_rates(macs: MacRecord | None, results: Sequence[Any], peak: Peak | None) -> dict[str, Any] | None:
    """GMAC/s each per-frame component achieved in each bench mode, and its share of ``peak``.

    Args:
        macs: the bundle's MAC record (None: exported before MACs were recorded).
        results: bench's ``ModeResult``s (``mode``, ``fps``, ``stage_ms[component]["mean"]`` in ms).
        peak: the device peak, or None.

    Returns:
        ``{"input_size", "gmac" (per frame, per component), "peak" (GMAC/s, how),
        "modes": {mode: {component: {"gmac_per_s", "fraction"}}}}`` (the ``frame`` entry:
        the whole per-frame path at the mode's throughput), or None without a MAC record.
    """
    if macs is None:
        return None
    gmac = {name: n / 1e9 for name, n in macs.per_frame.items() if n > 0}
    gmac["frame"] = macs.frame_total / 1e9
    modes: dict[str, dict[str, dict[str, float]]] = {}
    for r in results:
        row: dict[str, dict[str, float]] = {}
        for name, g in gmac.items():
            seconds = 1.0 / r.fps if name == "frame" and r.fps > 0 else r.stage_ms.get(name, {}).get("mean", 0.0) / 1e3
            if seconds > 0:
                rate = g / seconds
                row[name] = {"gmac_per_s": rate,
                             "fraction": peak.fraction(g * 1e9, seconds) if peak else None}
        modes[r.mode] = row
    return {
        "input_size": list(macs.input_size), "gmac": gmac, "modes": modes,
        "peak": None if peak is None else {"device": peak.device, "dtype": peak.dtype,
                                           "gmac_per_s": peak.macs_per_s / 1e9, "how": peak.how},
    }
