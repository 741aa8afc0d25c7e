"""Command parameters from a library options dataclass, so options are declared once.

Each field of the dataclass carries its help text and flags in ``field(metadata=...)``
(``help``, ``flags``, ``typer`` keyword arguments such as ``min`` or ``envvar``); the
command function receives the parsed values as keyword arguments with the fields' names.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any, Callable

import typer


def options_parameters(cls: type) -> list[inspect.Parameter]:
    """One keyword-only typer Option parameter per field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        flags = tuple(meta.get("flags") or ()) or (f"--{f.name.replace('_', '-')}",)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        option = typer.Option(default, *flags, help=meta.get("help", ""), **meta.get("typer", {}))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=hints[f.name]))
    return params


def with_options(cls: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``fn(**values)`` so that typer sees the fields of ``cls`` as its parameters."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__signature__ = inspect.Signature(options_parameters(cls))  # type: ignore[attr-defined]
        return fn

    return decorate
