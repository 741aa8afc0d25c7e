"""The sink interface and atomic file writes (readers never see a half-written file)."""

from __future__ import annotations

import abc
import os
import tempfile
from pathlib import Path

from tr2m_edge.runtime.results import MetricDepth


class Sink(abc.ABC):
    """Consumes results in the caller's thread; ``close`` finalises every file it wrote."""

    name = "sink"

    @abc.abstractmethod
    def write(self, result: MetricDepth) -> None:
        """Handle one frame's result."""

    def close(self) -> None:
        """Flush and finalise; called once, also after Ctrl-C or an error."""

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder + rename: the file is complete or absent."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
