"""The accuracy gate: the INT8 pipeline against the FP32 pipeline on held-out frames.

End to end, both pipelines run every held-out frame the way the runtime does
(:meth:`FrameStages.run_frame`) and their metric depth maps are compared over all pixels:
AbsRel = mean(|d_int8 - d_fp32| / d_fp32) and delta1 agreement = the share of pixels with
max(d_int8 / d_fp32, d_fp32 / d_int8) < 1.25. Per component, the runtime's comparator
(:func:`tr2m_edge.runtime.comparator.check_parity`, the fp32 runners as reference) feeds
each INT8 graph the fp32 graphs' own inputs and reports the error of each output, so a
failing gate says which graph lost the accuracy. Above ``max_drift`` (AbsRel, default 2 %)
the variant is unusable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tr2m_edge.config import ModelConfig
from tr2m_edge.calib.data import frame_stages
from tr2m_edge.contract import DEPTH
from tr2m_edge.parity import Tolerance, abs_rel, delta1_agreement
from tr2m_edge.runtime.comparator import check_parity, record_reference
from tr2m_edge.runtime.runners.base import Runner
from tr2m_edge.runtime.stages import host_array

log = logging.getLogger(__name__)
DEFAULT_MAX_DRIFT = 0.02  # AbsRel of INT8 metric depth against fp32


@dataclass
class GateReport:
    """What the gate measured (``Manifest.calibration["gate"]``)."""

    max_drift: float
    frames: int = 0
    abs_rel: float = float("nan")  # over all pixels of all held-out frames
    delta1: float = float("nan")
    max_abs: float = float("nan")  # metres
    mean_abs: float = float("nan")
    worst_frame_abs_rel: float = float("nan")
    components: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # comp -> output -> worst errors

    @property
    def usable(self) -> bool:
        return bool(self.abs_rel <= self.max_drift)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "usable": self.usable}

    def describe(self) -> str:
        """One line with the numbers (what ``calib`` prints)."""
        verdict = "usable" if self.usable else f"UNUSABLE (over the {self.max_drift:.2%} limit)"
        return (f"INT8 vs fp32 on {self.frames} held-out frames: metric depth AbsRel {self.abs_rel:.3%}, "
                f"delta1 agreement {self.delta1:.2%}, mean |diff| {self.mean_abs:.3g} m, worst frame AbsRel "
                f"{self.worst_frame_abs_rel:.3%}: {verdict}")

    def component_lines(self) -> list[str]:
        """One line per INT8 component output: its worst relative and mean absolute error."""
        return [f"{comp}.{name}: rel. error {e['rel']:.3g}, mean |diff| {e['mean_abs']:.3g}"
                for comp, outs in self.components.items() for name, e in outs.items()]


def run_gate(reference: Mapping[str, Runner], candidate: Mapping[str, Runner], cfg: ModelConfig,
             frames: Sequence[np.ndarray], token_ids: Sequence[np.ndarray], biases: Sequence[np.ndarray],
             frame_size: tuple[int, int] | None, quantized: Sequence[str], *, max_drift: float = DEFAULT_MAX_DRIFT,
             on_frame: Callable[[int], None] | None = None) -> GateReport:
    """Measure the INT8 runner set against the fp32 one on held-out frames.

    Args:
        reference: activated fp32 runners of all six components.
        candidate: activated runners with the INT8 graphs where there are some (fp32 elsewhere).
        cfg: the model config.
        frames: held-out (H, W, 3) uint8 RGB frames.
        token_ids: per frame, the (1, 77) int64 token ids of its caption.
        biases: per frame, the fp32 (1, C) scene bias of that caption (the INT8 chain's input).
        frame_size: the bundle's fixed frame size or None.
        quantized: the components that have an INT8 graph (compared one by one).
        max_drift: the AbsRel limit.
        on_frame: called with the frame index after each frame (progress).
    """
    int8_stages = frame_stages(candidate, cfg, frame_size, where="INT8 candidate")
    report = GateReport(max_drift=max_drift, frames=len(frames))
    refs, gots, per_frame = [], [], []
    tolerance = Tolerance(rel=None, abs_rel=max_drift)
    for i, (frame, ids, bias) in enumerate(zip(frames, token_ids, biases)):
        ref = record_reference(reference, cfg, frame, ids, label="fp32")
        hw = (int(frame.shape[0]), int(frame.shape[1]))
        got = np.asarray(host_array(int8_stages.run_frame(frame, bias, hw)[0][DEPTH]), dtype=np.float64)
        refs.append(np.asarray(ref.depth, dtype=np.float64))
        gots.append(got)
        per_frame.append(abs_rel(got, refs[-1]))
        for comp in [c for c in list(ref.inputs) if c not in quantized]:
            ref = ref.without(comp)
        parity = check_parity(candidate, ref, cfg, precision="int8", backend="onnxruntime-cpu", tolerance=tolerance)
        for comp, diffs in parity.components.items():
            outs = report.components.setdefault(comp, {})
            for d in diffs:
                worst = outs.setdefault(d.name, {"rel": 0.0, "max_abs": 0.0, "mean_abs": 0.0})
                worst.update(rel=max(worst["rel"], d.rel), max_abs=max(worst["max_abs"], d.max_abs),
                             mean_abs=max(worst["mean_abs"], d.mean_abs))
        if on_frame is not None:
            on_frame(i)
    ref_all = np.concatenate([r.ravel() for r in refs])
    got_all = np.concatenate([g.ravel() for g in gots])
    diff = np.abs(got_all - ref_all)
    report.abs_rel, report.delta1 = abs_rel(got_all, ref_all), delta1_agreement(got_all, ref_all)
    report.max_abs, report.mean_abs = float(diff.max()), float(diff.mean())
    report.worst_frame_abs_rel = float(max(per_frame))
    log.info("%s", report.describe())
    return report
