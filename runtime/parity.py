"""Compare outputs of two runs (a backend against the fp32 reference): one comparator for
``bench``, the tests and anyone checking a new engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

from tr2m_edge.errors import InputError


@dataclass(frozen=True)
class Drift:
    """How far ``test`` is from ``ref`` (same shapes), over all compared values."""

    max_abs: float
    mean_abs: float
    max_rel: float  # max |test - ref| / |ref|
    mean_rel: float  # mean |test - ref| / |ref| (AbsRel between the two)
    frac_rel_over_1pct: float  # share of values off by more than 1 %
    count: int

    def as_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in self.__dataclass_fields__}


def drift(ref: np.ndarray | Iterable[np.ndarray], test: np.ndarray | Iterable[np.ndarray]) -> Drift:
    """Drift of ``test`` against ``ref``: arrays, or equal-length sequences of arrays."""
    refs = [ref] if isinstance(ref, np.ndarray) else list(ref)
    tests = [test] if isinstance(test, np.ndarray) else list(test)
    if len(refs) != len(tests) or not refs:
        raise InputError(f"Cannot compare {len(tests)} outputs with {len(refs)} reference outputs.")
    abs_max = rel_max = abs_sum = rel_sum = over = 0.0
    count = 0
    for r, t in zip(refs, tests):
        r64, t64 = np.asarray(r, np.float64), np.asarray(t, np.float64)
        if r64.shape != t64.shape:
            raise InputError(f"Output shapes differ: reference {r64.shape}, test {t64.shape}.")
        diff = np.abs(t64 - r64)
        rel = diff / np.maximum(np.abs(r64), 1e-12)
        abs_max, rel_max = max(abs_max, float(diff.max())), max(rel_max, float(rel.max()))
        abs_sum += float(diff.sum())
        rel_sum += float(rel.sum())
        over += float(np.count_nonzero(rel > 0.01))
        count += diff.size
    return Drift(abs_max, abs_sum / count, rel_max, rel_sum / count, over / count, count)


def compare_outputs(ref: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray]) -> dict[str, Drift]:
    """Per-output drift for the outputs both runs produced."""
    common = [k for k in ref if k in test]
    if not common:
        raise InputError(f"No common outputs to compare: reference has {sorted(ref)}, test has {sorted(test)}.")
    return {k: drift(ref[k], test[k]) for k in common}
