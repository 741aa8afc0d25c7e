"""The ``tr2m-edge`` command line: thin commands over library functions.

Each layer registers its commands from its own module; :func:`main` turns every
:class:`~tr2m_edge.errors.Tr2mError` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.markup import escape

from tr2m_edge.cli.app import app
from tr2m_edge.errors import Tr2mError

__all__ = ["app", "main"]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _register() -> None:
    # Each module registers its commands on `app` when imported.
    import tr2m_edge.cli.calib  # noqa: F401
    import tr2m_edge.cli.core  # noqa: F401
    import tr2m_edge.cli.demo  # noqa: F401
    import tr2m_edge.cli.export  # noqa: F401
    import tr2m_edge.cli.runtime  # noqa: F401
    import tr2m_edge.cli.train  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tr2m-edge`` script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except Tr2mError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
