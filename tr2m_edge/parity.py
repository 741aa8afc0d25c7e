"""Parity measures: how far outputs are from their reference (export checks, bench, tests).

Numpy only (the runtime uses it without PyTorch). Measures per output: ``max_abs``,
``mean_abs`` and ``rel`` = max_abs / max|reference|; for metric depth also AbsRel =
mean(|d - d_ref| / d_ref). Tolerances: fp32 ``rel`` <= 1e-3 for every output and depth
AbsRel <= 1e-3; fp16 depth AbsRel <= 1 %. :class:`ParityReport` is what the comparator
(:func:`tr2m_edge.runtime.comparator.check_parity`: runner sets in, per-output
differences out) returns and what a bundle's manifest records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tr2m_edge.errors import ExportError, InputError


@dataclass(frozen=True)
class Tolerance:
    """Limits a parity report must meet (``None``: not checked)."""

    rel: float | None  # per-output max_abs / max|ref|
    abs_rel: float  # AbsRel of the end-to-end metric depth


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(rel=1e-3, abs_rel=1e-3),
    "fp16": Tolerance(rel=None, abs_rel=1e-2),
}


@dataclass
class OutputDiff:
    """Difference of one output tensor against its reference."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    rel: float  # max_abs / max|ref|

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def compare(name: str, got: np.ndarray, ref: np.ndarray, error: type[Exception] = InputError,
            ref_name: str = "the reference") -> OutputDiff:
    """Difference of one output; a shape mismatch raises ``error``."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        raise error(f"Output '{name}' has shape {got.shape}; {ref_name} gives {ref.shape}.")
    diff = np.abs(got - ref)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    return OutputDiff(name=name, shape=tuple(got.shape), max_abs=max_abs,
                      mean_abs=float(diff.mean()) if diff.size else 0.0, rel=rel)


def abs_rel(got: np.ndarray, ref: np.ndarray) -> float:
    """mean(|got - ref| / ref) over all pixels (ref is clipped metric depth, > 0)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.mean(np.abs(got - ref) / ref))


def delta1_agreement(got: np.ndarray, ref: np.ndarray) -> float:
    """Share of pixels with max(got / ref, ref / got) < 1.25 (positive depth maps; 1.0 = all agree)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.mean(np.maximum(got / ref, ref / got) < 1.25))


def depth_drift(refs: Sequence[np.ndarray], tests: Sequence[np.ndarray]) -> dict[str, float]:
    """Drift of a run's metric depth maps against reference maps of the same frames.

    Returns max_abs and mean_abs (metres), rel (max_abs / max reference depth), AbsRel and
    delta1 agreement, over all pixels of all frames.
    """
    if len(refs) != len(tests) or not refs:
        raise InputError(f"Cannot compare {len(tests)} depth maps with {len(refs)} reference maps.")
    ref = np.stack([np.asarray(r, np.float64) for r in refs])
    got = np.stack([np.asarray(t, np.float64) for t in tests])
    d = compare("depth", got, ref)
    return {"max_abs": d.max_abs, "mean_abs": d.mean_abs, "rel": d.rel, "abs_rel": abs_rel(got, ref),
            "delta1": delta1_agreement(got, ref), "frames": float(len(refs))}


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
