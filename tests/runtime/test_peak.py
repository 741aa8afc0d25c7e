"""The matmul probe behind bench's fraction of peak (runtime/peak.py)."""

from __future__ import annotations


def test_the_cpu_peak_probe_measures_a_matmul_rate():
    from tr2m_edge.runtime.peak import cpu_peak, given_peak

    peak = cpu_peak(n=256, repeats=2)
    assert peak.device == "cpu" and peak.dtype == "float32" and peak.macs_per_s > 1e7
    assert peak.fraction(peak.macs_per_s, 1.0) == 1.0 and peak.fraction(1.0, 0.0) != peak.fraction(1.0, 0.0)  # NaN
    assert given_peak(100.0).macs_per_s == 1e11
