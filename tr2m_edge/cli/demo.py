"""``tr2m-edge demo``: the offline end-to-end run (:mod:`tr2m_edge.demo`), rendered as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tr2m_edge.cli.app import app

console = Console(highlight=False)


def _render(summary: dict[str, Any]) -> None:
    table = Table(title="Held-out synthetic scenes, bundle on ONNX Runtime (CPU)")
    for col in ("family", "AbsRel", "RMSE (m)", "d1", "AbsRel, wrong-family caption"):
        table.add_column(col)
    for fam, m in summary["metrics"].items():
        s = summary["metrics_shuffled_captions"][fam]
        table.add_row(fam, f"{m['abs_rel']:.3f}", f"{m['rmse']:.2f}", f"{m['d1']:.3f}", f"{s['abs_rel']:.3f}")
    console.print(table)
    run = summary["run"]
    console.print(f"video run: {run['frames_written']}/{run['frames_read']} frames written at {run['fps']:.1f} FPS "
                  f"({run['backend']}, {run['mode']})")
    out = Path(summary["out_dir"])
    console.print(f"outputs: {summary['checkpoint']}, {summary['bundle']}/, {out / 'depth.mp4'}, {out / 'depth'}/, "
                  f"{out / 'demo.json'}  ({summary['total_s']} s in all)")


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for the checkpoint, bundle, videos and depth maps."),
    steps: int = typer.Option(200, min=1, help="Training steps of the tiny head (more: better metrics, longer run)."),
    frames: int = typer.Option(24, min=3, help="Held-out synthetic scenes for the video run and the metrics."),
    seed: int = typer.Option(0, help="Seed of the synthetic scenes and of training."),
) -> None:
    """Offline end-to-end demo: synthetic scenes -> train -> export -> run -> metrics (no downloads, CPU)."""
    from tr2m_edge.demo import run_demo

    _render(run_demo(out, steps, frames, seed))
