"""The ``tr2m-edge`` command line: thin commands over library functions.

Each layer registers its commands from its own module; :func:`main` turns every
:class:`~tr2m_edge.errors.Tr2mError` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console

from tr2m_edge.errors import Tr2mError

app = typer.Typer(
    name="tr2m-edge",
    help="Metric depth from one camera: train, export and run TR2M on GPUs, Jetsons and CPUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _register() -> None:
    # Each module registers its commands on `app` when imported.
    from tr2m_edge.cli import core, demo, export, runtime, train  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tr2m-edge`` script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _register()
    try:
        app(args=argv, standalone_mode=True)
    except Tr2mError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
