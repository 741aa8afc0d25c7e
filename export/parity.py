"""Parity: every exported graph against PyTorch, on the same inputs (one comparator for all).

Used at export time (``export_bundle`` refuses to write a bundle beyond tolerance), by the
tests, and reusable by ``bench`` (accuracy drift). Two checks per precision and backend:

* per component: each graph gets the PyTorch model's own intermediate values as inputs
  (frame, image, tokens, D_r, scene bias) and its outputs are compared with PyTorch's;
* end to end: the graphs are chained exactly as the runtime chains them (uint8 frame ->
  preprocess -> depth [+ image encoder] -> head, caption tokens -> text encoder -> scene
  bias), and the final metric depth is compared with ``TR2M.forward`` at frame size.

Error measures: ``max_abs``, ``mean_abs``, ``rel`` = max_abs / max|reference| per output,
and AbsRel = mean(|d - d_ref| / d_ref) of the final metric depth. Tolerances:
fp32 ``rel`` <= 1e-3 for every output and AbsRel <= 1e-3; fp16 AbsRel <= 1 %.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tr2m_edge.errors import ExportError
from tr2m_edge.parity import TOLERANCES, OutputDiff, Tolerance, abs_rel
from tr2m_edge.parity import compare as _compare

__all__ = ["TOLERANCES", "OutputDiff", "ParityReport", "Tolerance", "abs_rel", "check_parity", "compare",
           "ort_runner", "run_chain", "torch_reference"]

log = logging.getLogger(__name__)

Runner = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class ParityReport:
    """Results of one precision on one backend (what goes into ``Manifest.parity``)."""

    precision: str
    backend: str
    components: dict[str, list[OutputDiff]] = field(default_factory=dict)
    depth_abs_rel: float = float("nan")
    depth_max_abs: float = float("nan")
    depth_mean_abs: float = float("nan")
    clipped_fraction: float = float("nan")  # reference pixels at the depth range limits
    tolerance: Tolerance | None = None

    def failures(self) -> list[str]:
        """Human-readable list of what exceeds the tolerance (empty when it passes)."""
        tol = self.tolerance or TOLERANCES[self.precision]
        bad = []
        if tol.rel is not None:
            for comp, diffs in self.components.items():
                bad += [f"{comp}.{d.name} relative error {d.rel:.2e} > {tol.rel:g}" for d in diffs if not d.rel <= tol.rel]
        if not self.depth_abs_rel <= tol.abs_rel:
            bad.append(f"end-to-end metric depth AbsRel {self.depth_abs_rel:.2e} > {tol.abs_rel:g}")
        return bad

    @property
    def passed(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict[str, Any]:
        tol = self.tolerance or TOLERANCES[self.precision]
        return {
            "precision": self.precision, "backend": self.backend, "passed": self.passed,
            "tolerance": asdict(tol),
            "depth": {"abs_rel": self.depth_abs_rel, "max_abs": self.depth_max_abs,
                      "mean_abs": self.depth_mean_abs, "clipped_fraction": self.clipped_fraction},
            "components": {c: [asdict(d) for d in diffs] for c, diffs in self.components.items()},
        }

    def check(self) -> None:
        """Raise ExportError listing every value beyond tolerance."""
        bad = self.failures()
        if bad:
            raise ExportError(
                f"{self.precision} parity check failed on {self.backend}: {'; '.join(bad)}. "
                "The exported graphs do not reproduce the PyTorch model; nothing was written."
            )


def compare(name: str, got: np.ndarray, ref: np.ndarray) -> OutputDiff:
    """Difference of one output against PyTorch; a shape mismatch is an ExportError."""
    return _compare(name, got, ref, error=ExportError, ref_name="PyTorch")


# ---------------------------------------------------------------- runners

def ort_runner(path: str | Path, providers: list[str] | None = None, threads: int | None = None) -> Runner:
    """ONNX Runtime session on ``path`` as a feeds -> outputs function (CPU by default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # fp16 graphs on the CPU log harmless constant-folding warnings
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    inputs = {i.name for i in sess.get_inputs()}

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, sess.run(names, {k: v for k, v in feeds.items() if k in inputs})))

    return run


@dataclass
class Reference:
    """PyTorch values of one frame + caption through the whole model (numpy, float32/int64).

    ``inputs[c]`` are the feeds of component ``c``; ``outputs[c]`` what PyTorch gives for
    them; ``depth`` the final metric depth of ``TR2M.forward`` at frame size.
    """

    inputs: dict[str, dict[str, np.ndarray]]
    outputs: dict[str, dict[str, np.ndarray]]
    frame: np.ndarray
    token_ids: np.ndarray
    depth: np.ndarray
    frame_size: tuple[int, int]
    depth_range: tuple[float, float]  # (min_depth, max_depth) of the model config, metres


def torch_reference(model: Any, frame: np.ndarray, token_ids: np.ndarray, *, reference: bool = False,
                    dynamic_frame: bool = False) -> Reference:
    """Run the PyTorch model on a uint8 frame (H, W, 3) and caption ids (1, 77).

    Args:
        model: :class:`tr2m_edge.model.tr2m.TR2M`.
        frame: RGB uint8 frame.
        token_ids: (1, 77) int64 caption ids.
        reference: end-to-end depth through the full cross-attention
            (``forward(reference=True)``) instead of the folded scene bias.
        dynamic_frame: the head graph takes ``frame_hw``.
    """
    import torch

    from tr2m_edge.preprocess import preprocess_tensor

    cfg = model.cfg
    fs = (int(frame.shape[0]), int(frame.shape[1]))
    with torch.no_grad():
        frame_t = torch.from_numpy(np.ascontiguousarray(frame))
        image = preprocess_tensor(frame_t.permute(2, 0, 1)[None], cfg.preprocess)
        rel, tokens = model.depth_encoder(image)
        feats = tokens if model.image_encoder is None else model.image_encoder(image)
        ids = torch.from_numpy(np.asarray(token_ids, dtype=np.int64))
        text = model.text_encoder(ids).float()
        bias = model.head.scene_bias(text)
        out = model.head_forward(rel, feats, bias=bias, frame_size=fs)
        full = model(image, text_emb=text, frame_size=fs, reference=reference)
    n = lambda t: t.detach().cpu().numpy()  # noqa: E731
    inputs: dict[str, dict[str, np.ndarray]] = {
        "preprocess": {"frame": frame},
        "depth": {"image": n(image)},
        "image_encoder": {"image": n(image)},
        "head": {"image_tokens": n(feats), "relative_depth": n(rel), "scene_bias": n(bias)},
        "text_encoder": {"token_ids": n(ids)},
        "scene_bias": {"text_embedding": n(text)},
    }
    if dynamic_frame:
        inputs["head"]["frame_hw"] = np.asarray(fs, dtype=np.int64)
    depth_out = {"relative_depth": n(rel)}
    if model.image_encoder is None:
        depth_out["image_tokens"] = n(tokens)
    outputs = {
        "preprocess": {"image": n(image)},
        "depth": depth_out,
        "image_encoder": {"image_tokens": n(feats)},
        "head": {"depth": n(out.depth), "scale": n(out.scale), "shift": n(out.shift)},
        "text_encoder": {"text_embedding": n(text)},
        "scene_bias": {"scene_bias": n(bias)},
    }
    if model.image_encoder is None:
        del inputs["image_encoder"], outputs["image_encoder"]
    return Reference(inputs=inputs, outputs=outputs, frame=frame, token_ids=np.asarray(token_ids),
                     depth=n(full.depth), frame_size=fs, depth_range=(cfg.min_depth, cfg.max_depth))


def run_chain(runners: Mapping[str, Runner], frame: np.ndarray, token_ids: np.ndarray,
              dynamic_frame: bool, image: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The runtime's order: frame -> preprocess -> depth [+ image_encoder] -> head; caption -> bias.

    Without a ``preprocess`` runner the chain starts from ``image`` (a network input at a
    size other than the preprocess graph's, for dynamic graphs).
    """
    if "preprocess" in runners:
        image = runners["preprocess"]({"frame": frame})["image"]
    elif image is None:
        raise ExportError("run_chain needs a preprocess runner or an image.")
    depth_out = runners["depth"]({"image": image})
    tokens = depth_out["image_tokens"] if "image_encoder" not in runners else runners["image_encoder"]({"image": image})["image_tokens"]
    text = runners["text_encoder"]({"token_ids": token_ids})["text_embedding"]
    bias = runners["scene_bias"]({"text_embedding": text})["scene_bias"]
    feeds = {"image_tokens": tokens, "relative_depth": depth_out["relative_depth"], "scene_bias": bias}
    if dynamic_frame:
        feeds["frame_hw"] = np.asarray(frame.shape[:2], dtype=np.int64)
    return runners["head"](feeds)


def check_parity(
    runners: Mapping[str, Runner],
    ref: Reference,
    *,
    precision: str = "fp32",
    backend: str = "onnxruntime-cpu",
    dynamic_frame: bool = False,
    tolerance: Tolerance | None = None,
) -> ParityReport:
    """Compare every runner with PyTorch per component and end to end.

    Args:
        runners: component name -> feeds-to-outputs function (ONNX Runtime sessions,
            TensorRT engines, ...); components without a runner are left out of the
            per-component table, but the chain needs all of them.
        ref: :func:`torch_reference` values.
        precision: ``fp32`` or ``fp16`` (selects the tolerance).
        backend: label recorded in the report.
        dynamic_frame: the head takes ``frame_hw``.

    Returns:
        The report (call :meth:`ParityReport.check` to enforce the tolerance).
    """
    report = ParityReport(precision=precision, backend=backend, tolerance=tolerance)
    for comp, run in runners.items():
        if comp not in ref.inputs:
            continue
        got = run(ref.inputs[comp])
        report.components[comp] = [compare(name, got[name], value) for name, value in ref.outputs[comp].items()]
    depth = run_chain(runners, ref.frame, ref.token_ids, dynamic_frame, image=ref.inputs["depth"]["image"])["depth"]
    diff = compare("depth", depth, ref.depth)
    report.depth_abs_rel = abs_rel(depth, ref.depth)
    report.depth_max_abs, report.depth_mean_abs = diff.max_abs, diff.mean_abs
    lo, hi = ref.depth_range
    report.clipped_fraction = float(np.mean((ref.depth <= lo) | (ref.depth >= hi)))
    log.info("%s/%s parity: depth AbsRel %.3e", precision, backend, report.depth_abs_rel)
    return report
