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
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tr2m_edge.errors import OutputError, Tr2mError


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


def write_text_atomic(path: str | Path, text: str) -> None:
    """UTF-8 text written with :func:`atomic_writer`."""
    write_bytes_atomic(path, text.encode("utf-8"))


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


def _writable_dir(folder: Path, flag: str, target: Path) -> None:
    """OutputError unless a file can really be created in ``folder`` (a probe: root ignores modes, not read-only mounts)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".tr2m-write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{flag} {target}: cannot write into {folder} ({exc.strerror or exc}); "
                          "choose a writable location.") from None


def check_output_file(path: str | Path, flag: str, *, need_bytes: int = 0) -> Path:
    """Check, before any work, that ``path`` can be written as a file; returns it.

    Refuses an existing folder at ``path``, a missing or non-folder parent, an unwritable
    parent (read-only mount, permissions) and, when ``need_bytes`` is given, too little
    free space. ``flag`` names the option in the one-line error (e.g. ``--json``).
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path} is an existing folder; give a file path (e.g. {path / 'out'}).")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"{flag} {path}: the folder {parent} does not exist; create it first (mkdir -p {parent}).")
    if not parent.is_dir():
        raise OutputError(f"{flag} {path}: {parent} is a file, not a folder.")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{flag} {path} exists and is not writable.")
    _writable_dir(parent, flag, path)
    if need_bytes and shutil.disk_usage(parent).free < need_bytes:
        raise OutputError(f"{flag} {path}: only {shutil.disk_usage(parent).free / 2**20:.0f} MiB free in {parent}, "
                          f"about {need_bytes / 2**20:.0f} MiB needed.")
    return path


def prepare_output_dir(path: str | Path, flag: str) -> Path:
    """Create (with parents) or reuse the folder ``path`` and check that files can be written into it.

    Refuses an existing file at ``path`` (or on its way) and an unwritable location.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is an existing file; give a folder path.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{flag} {path}: cannot create the folder ({exc.strerror or exc}).") from None
    _writable_dir(path, flag, path)
    return path


def user_cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/tr2m-edge/<parts>`` (default ``~/.cache/tr2m-edge/<parts>``): per-user data
    the toolkit can recompute (captions' scene biases, ONNX Runtime TensorRT engines). Not created.

    Raises:
        OutputError: no cache location (XDG_CACHE_HOME unset or relative, and no home folder).
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    if base and os.path.isabs(base):  # the XDG spec ignores a relative value
        root = Path(base)
    else:
        try:
            root = Path.home() / ".cache"
        except RuntimeError:  # no HOME and no passwd entry (some containers)
            raise OutputError("No user cache folder: set XDG_CACHE_HOME to a writable folder.") from None
    return root.joinpath("tr2m-edge", *parts)


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: Path, prefix: str, suffix: str = "") -> int:
    """Remove ``prefix<pid>...suffix`` leftovers in ``folder`` whose writing process is gone; returns how many."""
    removed = 0
    for path in folder.glob(f"{prefix}*{suffix}"):
        digits = path.name[len(prefix):].split(".")[0].split("-")[0]
        if digits.isdigit() and not pid_alive(int(digits)):
            try:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                removed += 1
            except OSError:
                pass
    return removed
