"""What the live view and ``--out`` videos draw besides the panel: the FPS, and a colour range
that is learned from the first second of frames and then stays fixed.

:class:`FpsMeter` measures the rate at which results reach a sink (the sink thread's
rate, what a viewer sees). :class:`SettlingColouriser` is a :class:`DepthColouriser`
whose range widens over the frames of its first ``seconds`` (the union of their 2nd..98th
percentiles) and is then frozen, so after that second the same colour means the same
distance in every frame.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from tr2m_edge.runtime.sinks.render import DepthColouriser


class FpsMeter:
    """Frames per second at the caller, smoothed (EMA) so the number is readable.

    Args:
        smoothing: weight of the previous estimate (0: the last interval only).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, smoothing: float = 0.9, clock: Callable[[], float] = time.perf_counter) -> None:
        self.smoothing = smoothing
        self.clock = clock
        self.fps: float | None = None
        self._last: float | None = None

    def tick(self) -> float | None:
        """Count one frame; returns the smoothed FPS (None until two frames were counted)."""
        now = self.clock()
        if self._last is not None:
            inst = 1.0 / max(now - self._last, 1e-6)
            self.fps = inst if self.fps is None else self.smoothing * self.fps + (1 - self.smoothing) * inst
        self._last = now
        return self.fps


class SettlingColouriser(DepthColouriser):
    """A colour range taken from the first ``seconds`` of frames, then fixed (``fixed`` is set).

    While settling, the range is the union of every frame's 2nd..98th depth percentile so
    far (it only widens, so calling :meth:`update` twice with the same frame, as two sinks
    sharing this colouriser do, changes nothing).

    Args:
        seconds: how long after the first frame the range keeps widening.
        log: colours spaced by log-depth (the range's minimum is kept >= 1 mm).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, seconds: float = 1.0, *, log: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(None, log=log)
        self.seconds = float(seconds)
        self.clock = clock
        self.started: float | None = None

    @property
    def settled(self) -> bool:
        """True once the range is fixed."""
        return self.fixed is not None

    def update(self, depth: np.ndarray) -> tuple[float, float]:
        """The range to colour ``depth`` with: widening during the first ``seconds``, then fixed."""
        if self.fixed is not None:
            return self.fixed
        now = self.clock()
        if self.started is None:
            self.started = now
        lo, hi = (float(v) for v in np.percentile(depth, (2, 98)))
        if self.log:
            lo = max(lo, 1e-3)
        if self.range is not None:
            lo, hi = min(lo, self.range[0]), max(hi, self.range[1])
        if hi - lo < 1e-3:
            hi = lo + 1e-3
        self.range = (lo, hi)
        if now - self.started >= self.seconds:
            self.fixed = self.range
        return self.range
