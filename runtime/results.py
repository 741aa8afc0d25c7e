"""What the runtime produces per frame (:class:`MetricDepth`) and per run (counters, timings)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MetricDepth:
    """Metric depth of one frame.

    Attributes:
        depth: (H, W) float32 metres at frame size, clipped to the model's depth range.
        index: frame index in the stream.
        timestamp: capture time (seconds since the epoch).
        caption: scene caption whose bias produced this frame.
        latency_ms: capture -> result handed to the consumer, milliseconds.
        captured_at: ``time.perf_counter()`` when the frame was captured (its age is now - this).
        stage_ms: per-stage compute time, milliseconds.
        nonfinite: NaN/inf values that were clamped in this frame.
        scale, shift: A and B (h, w) at network input size (when asked).
        relative: D_r (h, w) at network input size (when asked).
        rgb: the (H, W, 3) uint8 frame the depth belongs to.
        depth_gt: ground truth (H, W) metres when the source has it.
    """

    depth: np.ndarray
    index: int = 0
    timestamp: float = 0.0
    caption: str = ""
    latency_ms: float = 0.0
    captured_at: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    nonfinite: int = 0
    scale: np.ndarray | None = None
    shift: np.ndarray | None = None
    relative: np.ndarray | None = None
    rgb: np.ndarray | None = None
    depth_gt: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-ready per-frame record: index, timestamp, min/median/max depth (m), latency."""
        d = self.depth
        return {
            "index": int(self.index), "timestamp": round(float(self.timestamp), 6),
            "min_m": float(np.min(d)), "median_m": float(np.median(d)), "max_m": float(np.max(d)),
            "latency_ms": round(float(self.latency_ms), 3), "caption": self.caption,
            "nonfinite": int(self.nonfinite),
            "stage_ms": {k: round(float(v), 3) for k, v in self.stage_ms.items()},
        }


class RunCounters:
    """Thread-safe frame counters of one run."""

    FIELDS = ("read", "dropped", "skipped", "converted", "processed", "nonfinite_frames", "nonfinite_values")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.FIELDS, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


def percentiles(samples: list[float], qs: tuple[int, ...] = (50, 90, 99)) -> dict[str, float]:
    """mean and the given percentiles of ``samples`` (NaN when empty)."""
    if not samples:
        return {"mean": float("nan"), **{f"p{q}": float("nan") for q in qs}}
    arr = np.asarray(samples, dtype=np.float64)
    return {"mean": float(arr.mean()), **{f"p{q}": float(np.percentile(arr, q)) for q in qs}}
