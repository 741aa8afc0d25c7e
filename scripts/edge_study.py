#!/usr/bin/env python
"""The edge accuracy study (issue 12): one command, same budget and seeds for every model.

Trains the edge head at each decoder output stride (1, 2, 4, 8), the released-architecture
head, and distils an edge student from the latter, on the procedural synthetic scenes;
prints the table and writes it (JSON + Markdown) to docs/measurements/edge_study.json / .md
(:mod:`tr2m_edge.train.study`).

Frozen encoders (``--encoders``): ``stage0`` (default) is the demo's trained tiny Depth
Anything (demo/weights/stage0, so D_r and its tokens carry structure) and a tiny CLIP text
tower trained on the study's training captions as the demo trains its own (which words a
caption holds, no depth), at the stage-0 size 140x182; ``random`` is the tiny preset's
random encoders at 70x98.

Usage:  python scripts/edge_study.py [--steps 600] [--seeds 0,1,2] [--distill-frames 384] [--out runs/edge_study]

Exit status 1 (after writing everything) when the edge preset's stride misses the goal
(AbsRel within 5 % of the full-resolution decoder's).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
from pathlib import Path

from tr2m_edge.config import EncoderSpec
from tr2m_edge.synthetic import iter_scenes, remembered_scenes
from tr2m_edge.train.study import RANDOM_ENCODERS, StudyConfig, run_study

ROOT = Path(__file__).resolve().parents[1]


# the stage-0 study's budget: the demo's head training (its input size, scene counts, batch and steps);
# the student distils from as many unlabelled frames as the heads have training scenes
STAGE0_BUDGET = {"input_size": (140, 182), "train_scenes": 384, "val_scenes": 48, "test_scenes": 48,
                 "batch_size": 8, "steps": 600, "distill_frames": 384, "distill_holdout": 48}


def stage0_encoders(out: Path, cfg: StudyConfig) -> tuple[EncoderSpec, EncoderSpec, str]:
    """The demo's stage-0 depth model and a text tower trained on the study's training captions
    (reused from ``out/text_encoder`` when its captions and config match)."""
    from tr2m_edge.demo.stage0 import stage0_spec
    from tr2m_edge.demo.text_encoder import RECORD, TextStageConfig, text_spec, train_text_encoder

    captions = [s.caption for s in iter_scenes(cfg.train_scenes, size=cfg.input_size, seed=0)]
    tcfg, folder = TextStageConfig(), out / "text_encoder"
    record = json.loads((folder / RECORD).read_text()) if (folder / RECORD).is_file() else {}
    sha = hashlib.sha256("\n".join(captions).encode()).hexdigest()
    if record.get("captions_sha256") != sha or record.get("config") != tcfg.to_dict():
        print(f"train the text tower on {len(captions)} training captions", file=sys.stderr, flush=True)
        train_text_encoder(captions, tcfg, folder)
    what = ("the demo's trained stage-0 tiny Depth Anything (demo/weights/stage0) and a tiny CLIP text "
            f"tower trained on the {len(captions)} training captions (bag of words, as the demo's): the same frozen "
            "inputs for every head")
    return stage0_spec(), text_spec(folder), what


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = StudyConfig()
    parser.add_argument("--out", default=defaults.out_dir, help="Working folder (checkpoints, caches).")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"Optimiser steps per model (default: {STAGE0_BUDGET['steps']} with stage0 encoders, "
                             f"{defaults.steps} with random ones).")
    parser.add_argument("--seeds", default=",".join(map(str, defaults.seeds)), help="Comma-separated seeds.")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "measurements"),
                        help="Where edge_study.json / .md are copied (empty string: nowhere).")
    parser.add_argument("--encoders", choices=("stage0", "random"), default="stage0",
                        help="Frozen encoders: the demo's stage-0 Depth Anything + a trained text tower at 140x182, "
                             "or the tiny preset's random ones at 70x98.")
    parser.add_argument("--distill-frames", type=int, default=None,
                        help=f"Unlabelled frames the student distils from (default: "
                             f"{STAGE0_BUDGET['distill_frames']} with stage0 encoders, {defaults.distill_frames} with "
                             "random ones).")
    parser.add_argument("--no-progress", action="store_true", help="No progress bars.")
    args = parser.parse_args()
    budget = dict(STAGE0_BUDGET) if args.encoders == "stage0" else {}
    if args.steps is not None:
        budget["steps"] = args.steps
    if args.distill_frames is not None:
        budget["distill_frames"] = args.distill_frames
    cfg = StudyConfig(out_dir=args.out, seeds=tuple(int(s) for s in args.seeds.split(",")),
                      progress=not args.no_progress, encoders=RANDOM_ENCODERS, **budget)
    with remembered_scenes():  # the text tower's captions and the study's scene files: one render per scene
        if args.encoders == "stage0":
            depth, text, what = stage0_encoders(Path(cfg.out_dir), cfg)
            cfg = dataclasses.replace(cfg, depth=depth, text=text, encoders=what)
        report = run_study(cfg, say=lambda msg: print(msg, file=sys.stderr, flush=True))
    table = (Path(cfg.out_dir) / "edge_study.md").read_text()
    print(table)
    if args.docs:  # Path("") would be "." and copy into the current folder
        docs = Path(args.docs)
        docs.mkdir(parents=True, exist_ok=True)
        for name in ("edge_study.json", "edge_study.md"):
            shutil.copyfile(Path(cfg.out_dir) / name, docs / name)
        print(f"written to {docs}/edge_study.json and .md")
    return 0 if report["preset_meets_goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
