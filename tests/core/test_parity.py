"""Parity measures (tr2m_edge/parity.py): error measures, tolerances and messages."""

from __future__ import annotations

import numpy as np
import pytest

from tr2m_edge.errors import ExportError
from tr2m_edge.parity import TOLERANCES, OutputDiff, ParityReport, abs_rel, compare


def test_compare_measures():
    ref = np.array([[1.0, 2.0], [4.0, -8.0]], dtype=np.float32)
    got = ref + np.array([[0.0, 0.5], [0.0, 0.1]], dtype=np.float32)
    d = compare("x", got, ref)
    assert d.shape == (2, 2)
    assert d.max_abs == pytest.approx(0.5) and d.mean_abs == pytest.approx(0.15, rel=1e-5)
    assert d.rel == pytest.approx(0.5 / 8)
    assert compare("z", np.zeros(3), np.zeros(3)).rel == 0.0
    with pytest.raises(ExportError, match=r"Output 'x' has shape \(3,\); PyTorch gives \(2, 2\)"):
        compare("x", np.zeros(3), ref, error=ExportError, ref_name="PyTorch")


def test_abs_rel():
    ref = np.array([1.0, 2.0, 4.0])
    assert abs_rel(ref * 1.01, ref) == pytest.approx(0.01)
    assert abs_rel(ref, ref) == 0.0


def test_report_tolerances_and_message():
    ok = ParityReport(precision="fp32", backend="onnxruntime-cpu",
                      components={"head": [OutputDiff("depth", (1,), 1e-6, 1e-7, 5e-4)]}, depth_abs_rel=2e-4)
    assert ok.passed and ok.to_dict()["passed"] is True
    bad = ParityReport(precision="fp32", backend="onnxruntime-cpu",
                       components={"depth": [OutputDiff("relative_depth", (1,), 1.0, 0.1, 2e-3)]}, depth_abs_rel=5e-3)
    assert bad.failures() == ["depth.relative_depth relative error 2.00e-03 > 0.001",
                              "end-to-end metric depth AbsRel 5.00e-03 > 0.001"]
    with pytest.raises(ExportError, match="fp32 parity check failed on onnxruntime-cpu: depth.relative_depth"):
        bad.check()
    fp16 = ParityReport(precision="fp16", backend="x", components={"depth": [OutputDiff("r", (1,), 1, 1, 0.5)]},
                        depth_abs_rel=0.009)
    assert fp16.passed  # fp16 is judged on metric depth only
    fp16.depth_abs_rel = 0.011
    assert fp16.failures() == ["end-to-end metric depth AbsRel 1.10e-02 > 0.01"]
    nan = ParityReport(precision="fp32", backend="x", depth_abs_rel=float("nan"))
    assert not nan.passed  # NaN never passes
    assert TOLERANCES["fp32"].rel == 1e-3 and TOLERANCES["fp16"].abs_rel == 0.01
