"""Files the toolkit writes: the one atomic writer, and the header check of its formats.

The atomic writer: a temp file in the target's folder (a hidden, unique name), written,
flushed and fsync'ed, then renamed over the target (``os.replace``, atomic on POSIX). On
any error, or an interrupt, the temp file is removed and the target is untouched. Used for
checkpoints, bundle manifests, the caption cache and the runtime's depth files.

:func:`check_header`: every versioned file (checkpoint, manifest) starts with a format tag
and a format version; one check refuses foreign files and files from a newer tr2m-edge.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tr2m_edge.errors import Tr2mError


@contextlib.contextmanager
def atomic_writer(path: str | Path) -> Iterator[IO[bytes]]:
    """Open a binary temp file next to ``path``; on a clean exit it replaces ``path``.

    Raises:
        OSError: the folder does not exist or is not writable (nothing is left behind).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with :func:`atomic_writer`."""
    with atomic_writer(path) as fh:
        fh.write(data)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Indented JSON written with :func:`atomic_writer`."""
    write_bytes_atomic(path, json.dumps(data, indent=2).encode())


def check_header(data: Any, fmt: str, max_version: int, error: type[Tr2mError], what: str, kind: str, *,
                 hint: str = "", upgrade: str = "Upgrade tr2m-edge.") -> int:
    """Check a loaded file's ``format`` tag and ``format_version``; returns the version.

    Args:
        data: the loaded object (a dict when the file is one of ours).
        fmt: the expected format tag, e.g. ``tr2m-edge/bundle``.
        max_version: the newest version this tr2m-edge reads.
        error: the Tr2mError subclass to raise.
        what: how to name the file in messages, e.g. ``/x/manifest.json``.
        kind: what the file should be, e.g. ``tr2m-edge bundle manifest``.
        hint: appended to the "not a ... file" message (what the file looks like instead).
        upgrade: what to do about a newer version.
    """
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f"{what} is not a {kind} (no '{fmt}' format tag).{hint}")
    version = data.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise error(f"{what} has format_version {version!r}; expected a whole number >= 0. The file is corrupt.")
    if version > max_version:
        raise error(f"{what} has {kind} format version {version}; this tr2m-edge reads up to {max_version}. {upgrade}")
    return version
