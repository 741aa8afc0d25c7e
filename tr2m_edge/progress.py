"""A progress display over the named steps of a long job (export, calibration), on stderr.

Each step prints "done <step> (<seconds>)" when it finishes; the bar counts steps. Step
names are shown as plain text (never interpreted as markup, so a caption such as
"bay [/] 4" prints as it is). Silent when disabled, but still logs each step's time.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

log = logging.getLogger(__name__)


class StepProgress:
    """A rich progress bar over ``total`` steps (``enabled=False``: no display)."""

    def __init__(self, total: int, enabled: bool, title: str = "working") -> None:
        self.progress: Progress | None = None
        if enabled:
            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(stderr=True, highlight=False))
            self.task = self.progress.add_task(escape(title), total=total)

    def __enter__(self) -> "StepProgress":
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def set_total(self, total: int) -> None:
        if self.progress:
            self.progress.update(self.task, total=total)

    @contextlib.contextmanager
    def step(self, description: str) -> Iterator[None]:
        """Time one step; shown while it runs, printed when it is done."""
        t0 = time.perf_counter()
        if self.progress:
            self.progress.update(self.task, description=escape(description))
        yield
        dt = time.perf_counter() - t0
        log.info("%s: %.1f s", description, dt)
        if self.progress:
            self.progress.console.print(f"[green]done[/] {escape(description)} [dim]({dt:.1f} s)[/]")
            self.progress.advance(self.task)
