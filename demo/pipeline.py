"""The demo's steps, in order, each timed, the expensive ones cached:

1. held-out scenes (their own stream; proven disjoint from every training/validation scene);
2. stage 0: the shipped relative-depth model, scored against a random Depth Anything;
3. the text tower (:mod:`tr2m_edge.demo.text_encoder`) on the training captions;
4. the TR2M head with the full loss, and 5. the ablation (no pseudo-depth, no contrast);
6. the text-only global scale/shift baseline;
7. export the full head to a verified ONNX bundle;
8. ``run --synthetic`` on the held-out scenes through the runtime (each scene's own
   caption): the video and the depth files;
9. the comparison on the held-out scenes, 10. one PNG panel per family.

Every scene is rendered once per run (:func:`tr2m_edge.synthetic.remembered_scenes`).

A stage's outputs are reused by the next run when its key (the stage's full config and
the hashes of what it reads) is unchanged; ``fresh=True`` recomputes everything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from rich.console import Console
from rich.markup import escape

from tr2m_edge.checkpoint import load_checkpoint
from tr2m_edge.config import get_preset
from tr2m_edge.demo.baseline import BaselineConfig, load_baseline, train_baseline
from tr2m_edge.demo.comparison import Comparison, check_held_out, compare, per_family, stream_seeds
from tr2m_edge.demo.panels import write_panels
from tr2m_edge.demo.stage0 import STAGE0_DIR, alignment_quality, check_stage0, relative_depth, stage0_record
from tr2m_edge.demo.text_encoder import TextStageConfig, train_text_encoder
from tr2m_edge.demo.training import TRAIN_SEED, VARIANTS, demo_config, demo_model_config, demo_train
from tr2m_edge.errors import ConfigError
from tr2m_edge.export import export_bundle
from tr2m_edge.metrics import compute_metrics
from tr2m_edge.model import build_head
from tr2m_edge.model.encoders import build_depth_encoder
from tr2m_edge.runtime.run import RunOptions, run_from_options
from tr2m_edge.synthetic import FAMILIES, iter_scenes, remembered_scenes
from tr2m_edge.train.state import load_trained_model

console = Console(highlight=False, stderr=True)
FRAME = (140, 182)  # synthetic frame size (H, W): the tiny preset's input size
HELD_OUT_SEED = 90_000  # stream of the held-out scenes (+ the demo seed)
STAGE_FILE = "stage.json"
VIDEO_RANGE = (0.2, 80.0)  # fixed, log-spaced colour range of the video (every family's depths)


@dataclass(frozen=True)
class DemoOptions:
    """What ``tr2m-edge demo`` runs."""

    out_dir: Path = Path("runs/demo")
    steps: int = 600  # optimiser steps of each head and of the baseline
    text_steps: int = 600  # optimiser steps of the text tower
    scenes: int = 384  # training scenes (heads and baseline)
    val_scenes: int = 48  # validation scenes (best.pt choice)
    frames: int = 48  # held-out scenes (video, metrics, panels)
    seed: int = 0
    size: tuple[int, int] = FRAME  # frame = network input size (H, W)
    stage0: Path = STAGE0_DIR
    fresh: bool = False  # recompute cached stages
    fp16: bool = True  # also export and check fp16 graphs
    video_fps: float = 2.0
    video_scale: int = 3  # enlargement of the video panel
    panel_scale: int = 2  # enlargement of the PNG panels
    progress: bool = True
    threads: int = 1  # torch CPU threads (tiny tensors: a second thread costs more than it gives, a lot on a busy box)

    def __post_init__(self) -> None:
        if self.frames < len(FAMILIES):
            raise ConfigError(f"--frames must be at least {len(FAMILIES)} (one scene per family); got {self.frames}.")
        if min(self.steps, self.text_steps, self.scenes, self.val_scenes, self.threads) < 1:
            raise ConfigError("steps, text_steps, scenes, val_scenes and threads must be >= 1.")


def _key(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class _Stage:
    name: str
    cached: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process (wall time on an idle machine, one thread)
    info: dict[str, Any] = field(default_factory=dict)


class _Stages:
    """Times each stage, prints it when done, and decides whether a cached stage can be reused."""

    def __init__(self, total: int, fresh: bool) -> None:
        self.total, self.fresh, self.done = total, fresh, []

    @contextlib.contextmanager
    def run(self, name: str, title: str) -> Iterator[_Stage]:
        """Time the stage ``name`` (a short key), announced as ``title``."""
        stage = _Stage(name)
        console.rule(escape(f"{len(self.done) + 1}/{self.total}  {title}"))
        t0, c0 = time.perf_counter(), time.process_time()
        yield stage
        stage.seconds = round(time.perf_counter() - t0, 1)
        stage.cpu_seconds = round(time.process_time() - c0, 1)
        self.done.append(stage)
        note = " [dim](cached: inputs unchanged)[/]" if stage.cached else ""
        console.print(f"[green]done[/] {escape(name)}: {stage.seconds:.1f} s (CPU {stage.cpu_seconds:.1f} s){note}")

    def reusable(self, folder: Path, key: str, outputs: list[str]) -> bool:
        """True when ``folder`` holds a finished stage with ``key`` and all its ``outputs``."""
        record = folder / STAGE_FILE
        if self.fresh or not record.is_file():
            return False
        try:
            ok = json.loads(record.read_text()).get("key") == key
        except (OSError, json.JSONDecodeError):
            return False
        return ok and all((folder / o).exists() for o in outputs)

    @staticmethod
    def start(folder: Path) -> None:
        """An empty folder for a stage about to be (re)computed."""
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    @staticmethod
    def finish(folder: Path, key: str) -> None:
        (folder / STAGE_FILE).write_text(json.dumps({"key": key, "finished": time.time()}) + "\n")

    def as_dict(self) -> dict[str, Any]:
        return {s.name: {"seconds": s.seconds, "cpu_seconds": s.cpu_seconds, "cached": s.cached} for s in self.done}


def _model_config(opts: DemoOptions) -> Any:
    return demo_model_config(opts.stage0, Path(opts.out_dir) / "text_encoder").replace(input_size=tuple(opts.size))


def _head_config(opts: DemoOptions, folder: Path, variant: str) -> Any:
    model = _model_config(opts)
    return demo_config(folder, opts.steps, opts.seed, opts.progress, variant=variant, scenes=opts.scenes,
                       val_scenes=opts.val_scenes, model=model)


def _used_scenes(opts: DemoOptions, record: dict[str, Any]) -> dict[str, set[int]]:
    """Scene seeds of every scene a model was trained or validated on."""
    s0 = record["config"]
    used = {"stage-0 training": stream_seeds(s0["scene_seed"], s0["scenes"]),
            "stage-0 validation": stream_seeds(s0["scene_seed"] + 1, s0["val_scenes"])}
    cfg = _head_config(opts, opts.out_dir, "full")
    used["head training"] = set().union(*(stream_seeds(s.seed, s.count) for s in cfg.train))
    used["head validation"] = stream_seeds(cfg.val.seed, cfg.val.count) if cfg.val is not None else set()
    return used


def _bundle_metrics(depth_dir: Path, frames: list[Any], min_depth: float, max_depth: float) -> dict[str, Any]:
    """Metrics of the depth ``run`` wrote (float32 .npy) against the held-out ground truth."""
    records = [json.loads(line) for line in (depth_dir / "frames.jsonl").read_text().splitlines() if line]
    if len(records) != len(frames):
        raise ConfigError(f"run wrote {len(records)} depth maps for {len(frames)} held-out scenes; see {depth_dir}.")
    rows = []
    for rec, frame in zip(records, frames):
        if rec["caption"] != frame.caption:
            raise ConfigError(f"frame {rec['index']} ran with '{rec['caption']}', not its own caption '{frame.caption}'.")
        pred = np.load(depth_dir / rec["npy"])
        rows.append((frame.family, compute_metrics(pred, frame.depth, min_depth, max_depth)))
    return per_family(rows)


def run_demo(opts: DemoOptions) -> dict[str, Any]:
    """Run every stage (reusing finished ones); returns the summary, also saved as ``demo.json``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(opts.threads)
    try:
        with remembered_scenes():
            return _run(opts)
    finally:
        torch.set_num_threads(old)


def _run(opts: DemoOptions) -> dict[str, Any]:
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(10, opts.fresh)
    summary: dict[str, Any] = {"out_dir": str(out), "options": {k: str(v) if isinstance(v, Path) else v
                                                                 for k, v in dataclasses.asdict(opts).items()}}
    t0, c0 = time.perf_counter(), time.process_time()
    size = tuple(opts.size)
    record = stage0_record(opts.stage0)
    model_cfg = _model_config(opts)

    with stages.run("held-out scenes", "held-out scenes (disjoint from every training and validation scene)"):
        held_seed = HELD_OUT_SEED + opts.seed
        check_held_out(stream_seeds(held_seed, opts.frames), _used_scenes(opts, record))
        frames = list(iter_scenes(opts.frames, size=size, seed=held_seed))

    with stages.run("stage 0", "stage 0: relative depth of the shipped tiny Depth Anything"):
        sha = check_stage0(opts.stage0)
        lo, hi = model_cfg.min_depth, model_cfg.max_depth
        trained = alignment_quality(relative_depth(build_depth_encoder(model_cfg.depth), frames, size), frames, lo, hi)
        random = alignment_quality(relative_depth(build_depth_encoder(get_preset("tiny").depth), frames, size),
                                   frames, lo, hi)
        summary["stage0"] = {"weights": str(opts.stage0), "sha256": sha, "trained_aligned": trained,
                             "random_aligned": random, "training": record["config"]}

    with stages.run("text tower", "train the text tower on the training captions (which words, no depth)") as st:
        folder = out / "text_encoder"
        tcfg = TextStageConfig(steps=opts.text_steps, seed=opts.seed)
        # the training scenes' stream names their captions: no rendering when the stage is cached
        key = _key({"text": tcfg.to_dict(), "scenes": [TRAIN_SEED + opts.seed, opts.scenes, size]})
        st.cached = stages.reusable(folder, key, ["model.safetensors"])
        if not st.cached:
            stages.start(folder)
            captions = [f.caption for f in iter_scenes(opts.scenes, size=size, seed=TRAIN_SEED + opts.seed)]
            train_text_encoder(captions, tcfg, folder)
            stages.finish(folder, key)
        text_sha = _sha(folder / "model.safetensors")

    best: dict[str, Path] = {}
    for variant in VARIANTS:
        what = "full loss" if variant == "full" else "ablation: no pseudo-depth, no contrast"
        with stages.run(f"TR2M head ({variant})", f"train the TR2M head ({what})") as st:
            folder = out / f"train_{variant}"
            cfg = _head_config(opts, folder, variant)
            key = _key({"train": cfg.to_dict(), "stage0": sha, "text": text_sha})
            st.cached = stages.reusable(folder, key, ["best.pt"])
            if not st.cached:
                stages.start(folder)
                demo_train(folder, opts.steps, opts.seed, opts.progress, variant=variant, scenes=opts.scenes,
                           val_scenes=opts.val_scenes, model=model_cfg)
                stages.finish(folder, key)
            best[variant] = folder / "best.pt"

    with stages.run("text-only baseline", "train the text-only baseline (global scale/shift from the caption)") as st:
        folder = out / "baseline"
        cfg = _head_config(opts, out / "train_full", "full")  # the heads' training and validation scenes
        bcfg = BaselineConfig(steps=opts.steps, seed=opts.seed, val_every=max(opts.steps // 4, 1))
        key = _key({"baseline": bcfg.to_dict(), "train": [dataclasses.asdict(s) for s in cfg.train],
                    "val": dataclasses.asdict(cfg.val), "model": model_cfg.to_dict(), "stage0": sha, "text": text_sha})
        st.cached = stages.reusable(folder, key, ["baseline.pt"])
        if not st.cached:
            stages.start(folder)
            model, _ = load_trained_model(best["full"])  # its frozen encoders (the head is not used)
            train_baseline(model, cfg.train, cfg.val, bcfg, folder / "baseline.pt")
            stages.finish(folder, key)

    with stages.run("export", "export the full head to a verified ONNX bundle (parity checked)") as st:
        folder = out / "bundle"
        captions = [next(f.caption for f in frames if f.family == fam) for fam in FAMILIES]
        key = _key({"ckpt": _sha(best["full"]), "fp16": opts.fp16, "size": size, "captions": captions})
        st.cached = stages.reusable(folder, key, ["manifest.json"])
        if not st.cached:
            export_bundle(best["full"], folder, fp16=opts.fp16, trt=False, frame_size=size, scenes=captions,
                          progress=opts.progress)
            stages.finish(folder, key)
        summary["bundle"] = str(folder)
        summary["parity"] = json.loads((folder / "manifest.json").read_text()).get("parity", {})

    with stages.run("run", "run --synthetic on the held-out scenes (ONNX Runtime, each scene's own caption)"):
        shutil.rmtree(out / "depth", ignore_errors=True)
        run_opts = RunOptions(bundle=out / "bundle", synthetic=True, frames=opts.frames, seed=held_seed,
                              backend="ort-cpu", mode="throughput", out=out / "depth.mp4", save_depth=out / "depth",
                              save_npy=True, fps=opts.video_fps, depth_range=f"{VIDEO_RANGE[0]},{VIDEO_RANGE[1]}",
                              log_colours=True, relative=True, panel_scale=opts.video_scale)
        summary["run"] = run_from_options(run_opts, console).as_dict()
        summary["run"].pop("captions", None)

    with stages.run("compare", "compare on the held-out scenes (same frozen D_r for every method)"):
        model, _ = load_trained_model(best["full"])
        ablation_ckpt = load_checkpoint(best["ablation"])
        result: Comparison = compare(model, build_head(ablation_ckpt.config, ablation_ckpt.head).eval(),
                                     load_baseline(out / "baseline" / "baseline.pt"), frames, opts.seed)
        metrics = result.as_dict()
        metrics["methods"]["tr2m_bundle"] = {"label": "TR2M, exported bundle on ONNX Runtime",
                                             **_bundle_metrics(out / "depth", frames, lo, hi)}
        summary["comparison"] = metrics
        summary["goals"] = goals(metrics["methods"])

    with stages.run("panels", "write one PNG panel per scene family"):
        summary["panels"] = {k: str(v) for k, v in write_panels(result.scenes, out, opts.panel_scale).items()}

    summary["stages"] = stages.as_dict()
    summary["total_s"] = round(time.perf_counter() - t0, 1)
    summary["total_cpu_s"] = round(time.process_time() - c0, 1)
    summary["video"] = str(out / "depth.mp4")
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def goals(methods: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's done-when goals, measured: TR2M AbsRel <= 0.20, better than text-only, text matters 1.5x."""
    tr2m = methods["tr2m"]["all"]["abs_rel"]
    text = methods["text_only"]["all"]["abs_rel"]
    wrong = methods["tr2m_wrong_caption"]["all"]["abs_rel"]
    return {
        "tr2m_abs_rel": tr2m, "tr2m_abs_rel_at_most_0.20": tr2m <= 0.20,
        "text_only_abs_rel": text, "tr2m_better_than_text_only": tr2m < text,
        "wrong_caption_ratio": wrong / tr2m if tr2m > 0 else float("inf"),
        "wrong_caption_at_least_1.5x_worse": wrong >= 1.5 * tr2m,
    }
