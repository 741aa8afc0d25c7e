"""The ``tr2m-edge`` command line: thin commands over library functions.

Each layer registers its commands from its own module; :func:`main` turns every
:class:`~tr2m_edge.errors.Tr2mError` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from rich.console import Console
from rich.markup import escape

from tr2m_edge.cli.app import app
from tr2m_edge.errors import Tr2mError
from tr2m_edge.extras import missing_module_message

__all__ = ["app", "main"]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _register() -> None:
    # Each module registers its commands on `app` when imported.
    import tr2m_edge.cli.build  # noqa: F401
    import tr2m_edge.cli.calib  # noqa: F401
    import tr2m_edge.cli.core  # noqa: F401
    import tr2m_edge.cli.demo  # noqa: F401
    import tr2m_edge.cli.export  # noqa: F401
    import tr2m_edge.cli.runtime  # noqa: F401
    import tr2m_edge.cli.train  # noqa: F401


def _command(argv: list[str]) -> str | None:
    """The command name in ``argv`` (its first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` and cleanup runs; exit status 143."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tr2m-edge`` script.

    A Tr2mError becomes one line on stderr and exit status 2, and so does a missing optional
    dependency (the line names the extra that installs it, :mod:`tr2m_edge.extras`); Ctrl-C
    exits 130 and SIGTERM 143, after the running command's cleanup (``run`` drains its
    pipeline first).
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except Tr2mError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        message = missing_module_message(exc.name or "", _command(sys.argv[1:] if argv is None else argv))
        if message is None:
            raise
        err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)
        sys.exit(2)
    except SystemExit as exc:
        # typer turns a KeyboardInterrupt (Ctrl-C, or SIGTERM as Terminated) that a command lets
        # through into a silent exit 130; name it, and give SIGTERM its own status
        stop = _interruption(exc) if exc.code == 130 else None
        if stop is None:
            raise
        _stopped(stop)
    except KeyboardInterrupt as stop:  # one raised outside typer's own handling (building the app)
        _stopped(stop)


def _stopped(stop: KeyboardInterrupt) -> None:
    """Name the stop on stderr and exit: 143 for SIGTERM (Terminated), 130 for Ctrl-C."""
    terminated = isinstance(stop, Terminated)
    err_console.print("terminated" if terminated else "interrupted")
    sys.exit(143 if terminated else 130)


def _interruption(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt behind an exit, following its causes and contexts (None: not one)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None
