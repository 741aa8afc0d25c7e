"""``tr2m-edge demo`` (the offline end-to-end run, :mod:`tr2m_edge.demo`) and ``tr2m-edge demo-stage0``
(regenerates the demo's relative-depth weights), rendered as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tr2m_edge.cli.app import app

console = Console(highlight=False)
TABLE_WIDTH = 124  # the comparison's columns need it; a narrower terminal wraps the lines, cells never truncate
FAMILY_COLUMNS = ("tabletop", "room", "street", "all")
ROWS = {  # method -> its short row name (demo.json keeps the long labels)
    "text_only": "text only: global (alpha, beta)",
    "tr2m": "TR2M (full loss)",
    "tr2m_ablation": "TR2M w/o pseudo-depth, contrast",
    "tr2m_wrong_caption": "TR2M, wrong-family caption",
    "oracle": "oracle: D_r fit to GT per image",
    "tr2m_bundle": "TR2M bundle (ONNX Runtime)",
}


def _cell(m: dict[str, float]) -> str:
    return f"{m['abs_rel']:.3f}  {m['rmse']:.2f}  {m['d1']:.3f}"


def _render(summary: dict[str, Any]) -> None:
    wide = Console(highlight=False, width=max(console.width, TABLE_WIDTH))
    s0 = summary["stage0"]
    table = Table(title="Stage 0 on the held-out scenes: relative depth after per-image least-squares alignment")
    table.add_column("tiny Depth Anything", no_wrap=True)
    for fam in FAMILY_COLUMNS:
        table.add_column(f"{fam}\nAbsRel  d1", justify="right", no_wrap=True)
    for name, key in (("random (tiny preset)", "random_aligned"), ("stage 0 (shipped)", "trained_aligned")):
        table.add_row(name, *(f"{s0[key][f]['abs_rel']:.3f}  {s0[key][f]['d1']:.3f}" for f in FAMILY_COLUMNS))
    wide.print(table)

    methods = summary["comparison"]["methods"]
    n = summary["options"]["frames"]
    table = Table(title=f"Metric depth on {n} held-out synthetic scenes, the same frozen D_r for every method "
                        "(AbsRel, RMSE in m, delta1)")
    table.add_column("method", no_wrap=True)
    for fam in FAMILY_COLUMNS:
        table.add_column(f"{fam}\nAbsRel  RMSE  d1", justify="right", no_wrap=True)
    for key, name in ROWS.items():
        table.add_row(escape(name), *(_cell(methods[key][f]) for f in FAMILY_COLUMNS))
    wide.print(table)

    g = summary["goals"]
    mark = {True: "[green]met[/]", False: "[red]missed[/]"}
    console.print(f"goals: TR2M AbsRel {g['tr2m_abs_rel']:.3f} <= 0.20 {mark[g['tr2m_abs_rel_at_most_0.20']]}; "
                  f"better than text only ({g['text_only_abs_rel']:.3f}) {mark[g['tr2m_better_than_text_only']]}; "
                  f"wrong-family caption {g['wrong_caption_ratio']:.1f}x worse (>= 1.5x) "
                  f"{mark[g['wrong_caption_at_least_1.5x_worse']]}")
    run = summary["run"]
    console.print(f"run: {run['frames_written']}/{run['frames_read']} frames written at {run['fps']:.1f} FPS "
                  f"({run['backend']}, {run['mode']})")
    times = ", ".join(f"{escape(k)} {v['seconds']:.1f} s{' (cached)' if v['cached'] else ''}"
                      for k, v in summary["stages"].items())
    console.print(f"time per stage: {times}")
    out = Path(summary["out_dir"])
    console.print(f"outputs: {escape(summary['video'])}, {escape(str(out / 'depth'))}/, panels "
                  f"{escape(', '.join(summary['panels'].values()))}, {escape(summary['bundle'])}/, "
                  f"{escape(str(out / 'demo.json'))}  ({summary['total_s']} s in all, CPU {summary['total_cpu_s']} s)")


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for checkpoints, bundle, video, depth maps, panels."),
    steps: int = typer.Option(600, min=1, help="Training steps of each TR2M head and of the text-only baseline."),
    scenes: int = typer.Option(384, min=8, help="Synthetic training scenes of the heads and the baseline."),
    frames: int = typer.Option(48, min=3, help="Held-out synthetic scenes for the video, the metrics and the panels."),
    seed: int = typer.Option(0, help="Seed of the scene streams and of training."),
    fresh: bool = typer.Option(False, "--fresh", help="Recompute every stage (default: reuse stages whose inputs are unchanged)."),
    panel_scale: int = typer.Option(2, min=1, max=8, help="Enlargement of the PNG panels (1: the network's input size)."),
    threads: int = typer.Option(1, min=1, help="PyTorch CPU threads (the tiny models run fastest on one, above all on a busy machine)."),
) -> None:
    """Offline end-to-end demo: stage-0 relative depth -> TR2M heads and baselines -> ONNX bundle -> run -> comparison.

    No downloads, CPU only; under 5 minutes on 2 cores, seconds when the stages are cached.
    """
    from tr2m_edge.demo import DemoOptions, run_demo
    from tr2m_edge.fileio import prepare_output_dir

    prepare_output_dir(out, "--out")  # an existing file or an unwritable place: one line, before any work
    _render(run_demo(DemoOptions(out_dir=out, steps=steps, scenes=scenes, frames=frames, seed=seed, fresh=fresh,
                                 panel_scale=panel_scale, threads=threads)))


@app.command("demo-stage0")
def demo_stage0_cmd(
    out: Path = typer.Option(Path("runs/stage0"), "--out", "-o",
                             help="Folder for the weights (save_pretrained: config.json, model.safetensors, stage0.json)."),
    steps: int = typer.Option(None, min=1, help="Training steps (default: the shipped weights' recipe)."),
    scenes: int = typer.Option(None, min=8, help="Training scenes (default: the shipped weights' recipe)."),
    seed: int = typer.Option(0, help="Seed of the data order and flips."),
) -> None:
    """Train the demo's stage 0 (tiny Depth Anything, scale-and-shift-invariant disparity loss) from its seed.

    With the defaults it regenerates the shipped demo/weights/stage0 bit for bit on the same CPU type and torch
    build (deterministic CPU training, fixed thread count); it says whether the hash matches.
    """
    import dataclasses

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from tr2m_edge.demo.stage0 import STAGE0_DIR, Stage0Config, stage0_record, train_stage0
    from tr2m_edge.errors import ModelLoadError

    cfg = Stage0Config(seed=seed)
    cfg = dataclasses.replace(cfg, **{k: v for k, v in (("steps", steps), ("scenes", scenes)) if v is not None})
    bar = Progress(TextColumn("[bold]stage 0"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True))
    with bar:
        task = bar.add_task("stage0", total=cfg.steps, loss="-")
        record = train_stage0(cfg, out, lambda step, loss: bar.update(task, completed=step, loss=f"{loss:.4f}"))
    q = record["val_aligned"].get("all", {})
    console.print(f"wrote {escape(str(out))} in {record['seconds']} s; validation AbsRel after alignment "
                  f"{q.get('abs_rel', float('nan')):.4f}, d1 {q.get('d1', float('nan')):.4f}")
    console.print(f"sha256 {record['sha256']}")
    try:
        shipped = stage0_record(STAGE0_DIR)["sha256"]
    except ModelLoadError:  # no shipped weights to compare with
        return
    same = "identical to" if shipped == record["sha256"] else "different from"
    console.print(f"{same} the shipped weights ({escape(str(STAGE0_DIR))})")
