"""The comparator: runner sets in, per-output differences out (Polygraphy's Comparator model).

One reference runner set (PyTorch at export time, fp32 ONNX Runtime for bench) runs the
whole chain once and records every component's feed and outputs
(:func:`record_reference`); a candidate runner set (ONNX Runtime, TensorRT, fp16, INT8)
is then checked twice (:func:`check_parity`):

* per component: each candidate gets the reference's own feed for that component and its
  outputs are compared with the reference's;
* end to end: the candidates run the chain exactly as the runtime does (the stages'
  serial order, :meth:`~tr2m_edge.runtime.stages.FrameStages.run_frame`, and the caption
  order, :func:`~tr2m_edge.runtime.stages.caption_bias`) and the final metric depth is
  compared with the reference depth.

Error measures and tolerances: :mod:`tr2m_edge.parity`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tr2m_edge.config import ModelConfig
from tr2m_edge.contract import DEPTH, FRAME_COMPONENTS, IMAGE
from tr2m_edge.errors import ExportError
from tr2m_edge.parity import OutputDiff, ParityReport, Tolerance, abs_rel, compare
from tr2m_edge.runtime.runners.base import Runner
from tr2m_edge.runtime.stages import FrameStages, Record, caption_bias, host_array

log = logging.getLogger(__name__)


@dataclass
class Reference:
    """The reference run of one frame + caption through the whole chain (numpy arrays).

    ``inputs[c]`` are the feeds of component ``c``; ``outputs[c]`` what the reference gives
    for them; ``depth`` the end-to-end reference metric depth at frame size.
    """

    inputs: dict[str, dict[str, np.ndarray]]
    outputs: dict[str, dict[str, np.ndarray]]
    frame: np.ndarray
    token_ids: np.ndarray
    depth: np.ndarray
    frame_size: tuple[int, int]
    depth_range: tuple[float, float]  # (min_depth, max_depth) of the model config, metres
    label: str = "the reference"

    def without(self, component: str) -> "Reference":
        """This reference with one component left out of the per-component comparison."""
        keep = {k: v for k, v in self.inputs.items() if k != component}
        return Reference(keep, {k: v for k, v in self.outputs.items() if k != component}, self.frame,
                         self.token_ids, self.depth, self.frame_size, self.depth_range, self.label)


def _stages(runners: Mapping[str, Runner], cfg: ModelConfig, frame_size: tuple[int, int]) -> FrameStages:
    frame = {c: r for c, r in runners.items() if c in FRAME_COMPONENTS}
    return FrameStages(frame, cfg, frame_size, where="parity check").activate()


def run_chain(runners: Mapping[str, Runner], cfg: ModelConfig, frame: np.ndarray, token_ids: np.ndarray, *,
              image: np.ndarray | None = None, record: Record | None = None) -> dict[str, np.ndarray]:
    """The runtime's order on activated runners: caption -> bias; frame -> preprocess -> depth
    [+ image encoder] -> head. Returns the head's outputs.

    Args:
        image: start from this network input instead of preprocessing ``frame`` (graphs
            checked at an input size other than the preprocess graph's).
        record: filled with every component's feed and outputs.
    """
    frame_size = (int(frame.shape[0]), int(frame.shape[1]))
    bias = caption_bias(runners, np.asarray(token_ids, dtype=np.int64), record)
    out, _ = _stages(runners, cfg, frame_size).run_frame(frame, bias, frame_size, image=image, record=record)
    return out


def record_reference(runners: Mapping[str, Runner], cfg: ModelConfig, frame: np.ndarray, token_ids: np.ndarray, *,
                     image: np.ndarray | None = None, label: str = "the reference") -> Reference:
    """Run the reference runners once and keep every component's feed and outputs."""
    record: Record = {}
    out = run_chain(runners, cfg, frame, token_ids, image=image, record=record)
    return Reference(
        inputs={c: dict(feed) for c, (feed, _) in record.items()},
        outputs={c: {k: np.asarray(host_array(v)) for k, v in outs.items()} for c, (_, outs) in record.items()},
        frame=frame, token_ids=np.asarray(token_ids), depth=np.asarray(host_array(out[DEPTH])),
        frame_size=(int(frame.shape[0]), int(frame.shape[1])), depth_range=(cfg.min_depth, cfg.max_depth),
        label=label,
    )


def check_parity(
    candidates: Mapping[str, Runner],
    ref: Reference,
    cfg: ModelConfig,
    *,
    precision: str = "fp32",
    backend: str = "onnxruntime-cpu",
    from_image: bool = False,
    tolerance: Tolerance | None = None,
) -> ParityReport:
    """Compare activated candidate runners with a reference, per component and end to end.

    Args:
        candidates: component name -> runner; all six components (the chain needs them).
        ref: from :func:`record_reference`; components it holds no feed for are only
            checked end to end.
        cfg: the model config (depth range).
        precision: ``fp32`` or ``fp16`` (selects the tolerance).
        backend: label recorded in the report.
        from_image: the end-to-end chain starts from the reference's network input.

    Returns:
        The report (call :meth:`ParityReport.check` to enforce the tolerance).
    """
    report = ParityReport(precision=precision, backend=backend, tolerance=tolerance)
    for comp, runner in candidates.items():
        if comp not in ref.inputs:
            continue
        got = runner.infer(ref.inputs[comp])
        report.components[comp] = [_diff(name, got[name], value, ref) for name, value in ref.outputs[comp].items()]
    image = ref.inputs["depth"][IMAGE] if from_image else None
    depth = np.asarray(host_array(run_chain(candidates, cfg, ref.frame, ref.token_ids, image=image)[DEPTH]))
    diff = _diff(DEPTH, depth, ref.depth, ref)
    report.depth_abs_rel = abs_rel(depth, ref.depth)
    report.depth_max_abs, report.depth_mean_abs = diff.max_abs, diff.mean_abs
    lo, hi = ref.depth_range
    report.clipped_fraction = float(np.mean((ref.depth <= lo) | (ref.depth >= hi)))
    log.info("%s/%s parity: depth AbsRel %.3e", precision, backend, report.depth_abs_rel)
    return report


def _diff(name: str, got: np.ndarray, want: np.ndarray, ref: Reference) -> OutputDiff:
    return compare(name, np.asarray(host_array(got)), want, error=ExportError, ref_name=ref.label)
