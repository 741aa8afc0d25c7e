#!/usr/bin/env python
"""How much of the demo's metric scale a caption can tell: the text-only baseline on ideal caption features.

The synthetic scenes draw each scene's metric size s log-uniformly within its family's range
(tabletop 0.8-1.35 m, room 3-9 m, street 15-72 m to the back wall) and build the whole
scene in units of s, so the image itself carries no metric cue; the caption names the
family (its surface words) and, for the outer thirds of the range, "small" or "large". This
script trains the demo's text-only global scale/shift baseline (:mod:`tr2m_edge.demo.baseline`,
same recipe and scenes) on three caption features:

- the demo's caption embedding (what the demo's baseline reads);
- a one-hot of (family, size word) parsed from the caption: the most a caption says about
  scale, read perfectly;
- a one-hot of the family alone.

and scores each on the demo's validation scenes and its held-out scenes, so the demo's
AbsRel goal can be read against what its captions allow. It also fits a linear probe
(logistic regression) from the caption embedding to the size word on the training captions
and scores it on the validation captions: whether the embedding holds the word at all.
Nothing is tuned on these numbers.

Usage:  python scripts/demo_text_bound.py [--demo runs/demo] [--json docs/measurements/demo_text_bound.json]

``--demo`` is a finished ``tr2m-edge demo`` folder (its text tower is reused).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from tr2m_edge.demo.baseline import BaselineConfig, encode_scenes, fit_baseline, load_baseline, score
from tr2m_edge.demo.pipeline import FRAME, HELD_OUT_SEED
from tr2m_edge.demo.stage0 import STAGE0_DIR
from tr2m_edge.demo.training import demo_config, demo_model_config
from tr2m_edge.model import build_model
from tr2m_edge.synthetic import FAMILIES, SIZE_WORDS, caption_scale, remembered_scenes
from tr2m_edge.train.datasets import DatasetSpec, open_dataset


def family_size_onehot(captions: list[str]) -> torch.Tensor:
    """(N, families x size words) one-hot of what each caption says about scale."""
    out = torch.zeros(len(captions), len(FAMILIES) * len(SIZE_WORDS))
    for i, caption in enumerate(captions):
        family, size = caption_scale(caption)
        out[i, len(SIZE_WORDS) * FAMILIES.index(family) + SIZE_WORDS.index(size)] = 1.0
    return out


def family_onehot(captions: list[str]) -> torch.Tensor:
    out = torch.zeros(len(captions), len(FAMILIES))
    for i, caption in enumerate(captions):
        out[i, FAMILIES.index(caption_scale(caption)[0])] = 1.0
    return out


def size_word_probe(train: torch.Tensor, train_captions: list[str], val: torch.Tensor,
                    val_captions: list[str], steps: int = 2000) -> dict[str, float]:
    """Accuracy of a linear classifier embedding -> size word (fit on train, full batch, Adam)."""
    def labels(captions: list[str]) -> torch.Tensor:
        return torch.tensor([SIZE_WORDS.index(caption_scale(c)[1]) for c in captions])

    y, vy = labels(train_captions), labels(val_captions)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = torch.nn.Linear(train.shape[1], len(SIZE_WORDS))
    opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(probe(train), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return {"train_accuracy": float((probe(train).argmax(1) == y).float().mean()),
                "val_accuracy": float((probe(val).argmax(1) == vy).float().mean())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"), help="A finished demo folder (its text tower).")
    parser.add_argument("--json", type=Path, default=Path("docs/measurements/demo_text_bound.json"),
                        help="Where the numbers are written.")
    parser.add_argument("--frames", type=int, default=48, help="Held-out scenes (the demo's default).")
    parser.add_argument("--seed", type=int, default=0, help="The demo's --seed.")
    args = parser.parse_args()
    text = args.demo / "text_encoder"
    if not (text / "model.safetensors").is_file():
        print(f"error: no text tower in {text}; run `tr2m-edge demo --out {args.demo}` first.", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    model = build_model(demo_model_config(STAGE0_DIR, text).replace(input_size=FRAME)).eval()
    train_cfg = demo_config(tempfile.gettempdir(), seed=args.seed, model=model.cfg)
    held = open_dataset(DatasetSpec("synthetic", split="test", count=args.frames, seed=HELD_OUT_SEED + args.seed),
                        FRAME)
    val = open_dataset(train_cfg.val, FRAME)
    proto = val.protocol
    bcfg = BaselineConfig(seed=args.seed)
    features = {"caption embedding (the demo's baseline)": None,
                "one-hot family and size word (ideal caption reading)": family_size_onehot,
                "one-hot family only": family_onehot}
    with remembered_scenes():  # every scene rendered and encoded once; only the caption features differ
        train = [open_dataset(spec, FRAME) for spec in train_cfg.train]
        splits = {"train": train, "val": [val], "held_out": [held]}
        encoded = {name: [encode_scenes(model, d) for d in sets] for name, sets in splits.items()}
        encoded = {name: tuple(torch.cat(parts) for parts in zip(*enc)) for name, enc in encoded.items()}
        captions = {name: [d[i]["caption"] for d in sets for i in range(len(d))] for name, sets in splits.items()}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, feat) in enumerate(features.items()):
            print(f"train the baseline on: {name}", file=sys.stderr, flush=True)
            data = {split: (rel, gt, emb if feat is None else feat(captions[split]))
                    for split, (rel, gt, emb) in encoded.items()}
            path = Path(tmp) / f"b{i}.pt"
            record = fit_baseline(data["train"], data["val"], proto, bcfg, path)
            net = load_baseline(path)
            scores = {split: score(net, *data[split], proto.min_depth, proto.max_depth)["abs_rel"]
                      for split in ("val", "held_out")}
            rows[name] = {**scores, "best_step": record["best_step"]}
    probe = size_word_probe(encoded["train"][2], captions["train"], encoded["val"][2], captions["val"])
    report = {"what": __doc__.splitlines()[0], "size_word_probe": probe, "text_tower": str(text), "baseline": bcfg.to_dict(),
              "scenes": {"train": [s.count for s in train_cfg.train], "val": len(val),
                         "held_out": args.frames}, "abs_rel": rows, "seconds": round(time.perf_counter() - t0, 1)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("| caption feature | val AbsRel | held-out AbsRel |\n|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['val']:.3f} | {r['held_out']:.3f} |")
    print(f"linear probe embedding -> size word: {100 * probe['train_accuracy']:.1f} % on the training captions, "
          f"{100 * probe['val_accuracy']:.1f} % on the validation captions")
    print(f"written to {args.json} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
