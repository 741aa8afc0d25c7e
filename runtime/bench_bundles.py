"""``bench A B ...``: several bundles side by side in one run (e.g. an old and a new edge head).

Each bundle gets :func:`~tr2m_edge.runtime.bench.run_bench` on the same synthetic frames
(same seed, frame size and caption), and the whole set is measured ``rounds`` times in
turn (A, B, A, B, ...), so that load from other processes on a shared machine hits every
bundle alike; each bundle's report is the round with its best per-frame throughput, and
every round's FPS is kept in the summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from tr2m_edge.bundle import open_bundle
from tr2m_edge.errors import ConfigError
from tr2m_edge.runtime.bench import BenchReport, run_bench


@dataclass
class BundleComparison:
    """Reports of several bundles measured in one run, and each round's throughput."""

    reports: list[BenchReport]
    rounds_fps: list[dict[str, list[float]]] = field(default_factory=list)  # per bundle: mode -> FPS per round

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per bundle: name, preset, decoder stride, GMAC per frame, best FPS per mode."""
        out = []
        for report, fps in zip(self.reports, self.rounds_fps):
            manifest = open_bundle(report.bundle, verify=False).manifest
            gmac = manifest.macs.frame_total / 1e9 if manifest.macs else None
            out.append({"bundle": report.bundle, "preset": manifest.model.name,
                        "output_stride": manifest.model.head.output_stride, "gmac_per_frame": gmac,
                        "fps": {mode: max(v) for mode, v in fps.items()}, "fps_rounds": fps,
                        "head_ms": {r.mode: r.stage_ms.get("head", {}).get("mean") for r in report.results}})
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"bundles": self.rows(), "reports": [r.as_dict() for r in self.reports]}


def compare_bundles(bundles: Sequence[str | Path], *, rounds: int = 1,
                    progress: Callable[[str], None] | None = None, **bench: Any) -> BundleComparison:
    """Benchmark every bundle of ``bundles`` with the same settings (``bench``: :func:`run_bench`'s options).

    Raises:
        ConfigError: fewer than two bundles, or rounds < 1.
        BundleError / BackendError: as :func:`run_bench`.
    """
    if len(bundles) < 2:
        raise ConfigError("Comparing bundles needs at least two.")
    if rounds < 1:
        raise ConfigError(f"--rounds must be >= 1; got {rounds}.")
    say = progress or (lambda msg: None)
    opened = [open_bundle(b) for b in bundles]  # every file verified before the first measurement
    best: list[BenchReport | None] = [None] * len(opened)
    fps: list[dict[str, list[float]]] = [{} for _ in opened]
    for k in range(rounds):
        for i, bundle in enumerate(opened):
            say(f"round {k + 1}/{rounds}: {bundle.root}")
            report = run_bench(bundle, progress=say, **bench)
            for r in report.results:
                fps[i].setdefault(r.mode, []).append(r.fps)
            top = max(r.fps for r in report.results)
            if best[i] is None or top > max(r.fps for r in best[i].results):  # type: ignore[union-attr]
                best[i] = report
    return BundleComparison([r for r in best if r is not None], fps)
