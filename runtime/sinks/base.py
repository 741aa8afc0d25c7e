"""The sink interface: results in, files or windows out, finalised on close."""

from __future__ import annotations

import abc

from tr2m_edge.runtime.results import MetricDepth


class Sink(abc.ABC):
    """Consumes results in the caller's thread; ``close`` finalises every file it wrote."""

    name = "sink"

    @abc.abstractmethod
    def write(self, result: MetricDepth) -> None:
        """Handle one frame's result."""

    def note_skipped(self, items: list[dict[str, str]]) -> None:
        """Inputs the source could not deliver (unreadable files), told once before :meth:`close`."""

    def close(self) -> None:
        """Flush and finalise; called once, also after Ctrl-C or an error."""

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
