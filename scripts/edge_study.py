#!/usr/bin/env python
"""The edge accuracy study (issue 12): one command, same budget and seeds for every model.

Trains the edge head at each decoder output stride (1, 2, 4, 8), the released-architecture
head, and distils an edge student from the latter, on the procedural synthetic scenes at
the tiny preset's size; prints the table and writes it (JSON + Markdown) to
docs/measurements/edge_study.json / .md (:mod:`tr2m_edge.train.study`).

Usage:  python scripts/edge_study.py [--steps 40] [--seeds 0,1] [--out runs/edge_study]

Exit status 1 (after writing everything) when the edge preset's stride misses the goal
(AbsRel within 5 % of the full-resolution decoder's).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tr2m_edge.train.study import StudyConfig, run_study

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = StudyConfig()
    parser.add_argument("--out", default=defaults.out_dir, help="Working folder (checkpoints, caches).")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="Optimiser steps per model.")
    parser.add_argument("--seeds", default=",".join(map(str, defaults.seeds)), help="Comma-separated seeds.")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "measurements",
                        help="Where edge_study.json / .md are copied (empty string: nowhere).")
    parser.add_argument("--no-progress", action="store_true", help="No progress bars.")
    args = parser.parse_args()
    cfg = StudyConfig(out_dir=args.out, steps=args.steps, seeds=tuple(int(s) for s in args.seeds.split(",")),
                      progress=not args.no_progress)
    report = run_study(cfg, say=lambda msg: print(msg, file=sys.stderr, flush=True))
    table = (Path(cfg.out_dir) / "edge_study.md").read_text()
    print(table)
    if str(args.docs):
        args.docs.mkdir(parents=True, exist_ok=True)
        for name in ("edge_study.json", "edge_study.md"):
            shutil.copyfile(Path(cfg.out_dir) / name, args.docs / name)
        print(f"written to {args.docs}/edge_study.json and .md")
    return 0 if report["preset_meets_goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
