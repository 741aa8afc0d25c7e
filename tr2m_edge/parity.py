"""The comparator: how far an output is from its reference (export checks, bench, tests).

Numpy only (the runtime uses it without PyTorch). Measures per output: ``max_abs``,
``mean_abs`` and ``rel`` = max_abs / max|reference|; for metric depth also AbsRel =
mean(|d - d_ref| / d_ref). Tolerances: fp32 ``rel`` <= 1e-3 for every output and depth
AbsRel <= 1e-3; fp16 depth AbsRel <= 1 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tr2m_edge.errors import InputError


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


def depth_drift(refs: Sequence[np.ndarray], tests: Sequence[np.ndarray]) -> dict[str, float]:
    """Drift of a run's metric depth maps against reference maps of the same frames.

    Returns max_abs and mean_abs (metres), rel (max_abs / max reference depth) and AbsRel,
    over all pixels of all frames.
    """
    if len(refs) != len(tests) or not refs:
        raise InputError(f"Cannot compare {len(tests)} depth maps with {len(refs)} reference maps.")
    ref = np.stack([np.asarray(r, np.float64) for r in refs])
    got = np.stack([np.asarray(t, np.float64) for t in tests])
    d = compare("depth", got, ref)
    return {"max_abs": d.max_abs, "mean_abs": d.mean_abs, "rel": d.rel, "abs_rel": abs_rel(got, ref),
            "frames": float(len(refs))}
