"""The ``tr2m-edge`` Typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tr2m-edge",
    help="Metric depth from one camera: train, export and run TR2M on GPUs, Jetsons and CPUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
