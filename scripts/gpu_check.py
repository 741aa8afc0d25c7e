#!/usr/bin/env python
"""One-command GPU check of the runtime's PyTorch and cuda-python paths.

For each preset (``tiny``; ``edge`` with Depth-Anything-S-sized random weights; ``paper``
with DINOv2-L-sized random weights at 434x560) it builds the model with random encoders
(no downloads) and runs the runtime's TorchRunner path in fp16 on CUDA (fp32 on the CPU),
reporting per-frame latency (mean/p50/p90 after warm-up), per-stage times, throughput,
the executor plan and peak memory for these variants:

    serial                   one stage after the other in the caller's thread (eager)
    serial + CUDA graphs     the same, every stage replaying a captured graph
    pipelined                the device plan: capture thread + one inference thread that
                             issues frame N (two streams, double-buffered inputs) before
                             collecting frame N-1; nothing dropped (eager)
    pipelined + CUDA graphs  the same with graphs
    latency + CUDA graphs    the device plan fed by a 30 FPS camera stand-in, newest
                             frame wins (stale frames dropped and counted)
    auto (measured)          what ``--backend auto`` runs: each component's dtype,
                             channels-last, torch.compile and CUDA-graph settings measured
                             first (runtime/runners/torch_tuning.py), pipelined and latency

Per variant it also reports each component's achieved TFLOP/s (2 x its MACs, counted
by tr2m_edge.model.macs, over its GPU time) and the fraction of the GPU's measured fp16
peak (a matmul probe at start, runtime/peak.py), and GPU memory as the driver counts it
(cudaMemGetInfo). It re-runs the device-plan-after-serial-graph-capture case that hung
once (with a watchdog), and checks the issue's goals (paper >= 200 FPS, edge >= 400 FPS
pipelined, DINOv2-L >= 30 % of peak, 0 drops at 30 FPS in latency mode).

(``--threads-plan`` adds the one-thread-per-stage plan for comparison.) It then times
the cuda-python path the TensorRT runner uses: pinned host buffers and two streams, H2D
of a camera frame and D2H of a depth map. A variant that fails is reported and the run
goes on; variants past ``--budget-s`` are skipped; the report is rewritten after every
preset, so a run cut short still leaves its results.

Usage (GPU, about 3-6 minutes; under 8):   python scripts/gpu_check.py --out gpu_check.json
Smoke test on a CPU:              python scripts/gpu_check.py --device cpu --frames 5 --out /tmp/g.json

Writes ``OUT`` (JSON) and ``OUT`` with the suffix ``.md`` (a markdown table). Works from a
source checkout without installing the package (the sub-packages are mapped like
setuptools' package-dir does); the dependencies must be installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _bootstrap() -> None:
    """Make ``tr2m_edge.runtime`` importable from a source checkout (package-dir mapping)."""
    try:
        import tr2m_edge.runtime  # noqa: F401
        return
    except ImportError:
        pass
    sys.path.insert(0, str(ROOT))
    import tr2m_edge

    if str(ROOT) not in tr2m_edge.__path__:
        tr2m_edge.__path__.append(str(ROOT))  # tr2m_edge.runtime -> ROOT/runtime, as installed


_bootstrap()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tr2m_edge.config import ModelConfig, get_preset  # noqa: E402
from tr2m_edge.model.encoders import build_depth_encoder, build_image_encoder  # noqa: E402
from tr2m_edge.model.summary import random_encoder_config  # noqa: E402
from tr2m_edge.model.head import build_head  # noqa: E402
from tr2m_edge.model.tr2m import TR2M  # noqa: E402
from tr2m_edge.runtime import DepthPipeline  # noqa: E402
from tr2m_edge.model.macs import count_macs  # noqa: E402
from tr2m_edge.runtime.bench import gpu_memory_mb, measure  # noqa: E402
from tr2m_edge.runtime.peak import cuda_peak  # noqa: E402
from tr2m_edge.runtime.results import percentiles  # noqa: E402
from tr2m_edge.runtime.sources import ArraySource  # noqa: E402

FRAME = (480, 640)  # camera frame (H, W)


def build(cfg: ModelConfig, device: str) -> TR2M:
    """Per-frame parts only (the text encoder runs once per scene and is not timed)."""
    def parts(where: str) -> TR2M:
        torch.manual_seed(0)
        with torch.device(where):  # random init straight on the GPU: seconds instead of minutes for ViT-L
            depth = build_depth_encoder(cfg.depth, return_tokens=cfg.shared_backbone)
            image = None if cfg.shared_backbone else build_image_encoder(cfg.image)
            head = build_head(cfg)
        return TR2M(cfg, depth, image, None, head).eval()  # type: ignore[arg-type]

    try:
        return parts(device)
    except Exception as exc:  # noqa: BLE001 - some model inits refuse a device context
        print(f"  building on {device} failed ({exc}); building on the CPU and moving", flush=True)
        return parts("cpu").to(device)


def frames(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:FRAME[0], 0:FRAME[1]]
    base = np.stack([yy * 255 / FRAME[0], xx * 255 / FRAME[1], (yy + xx) * 127 / sum(FRAME)], -1)
    return [np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8) for _ in range(count)]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One measured configuration of a preset."""

    mode: str  # serial | throughput | latency
    graphs: bool
    plan: str = "auto"  # executor plan for the pipelined modes (device on CUDA)
    tuned: bool = False  # settings measured per component, as --backend auto does

    @property
    def label(self) -> str:
        name = "serial" if self.mode == "serial" else ("pipelined" if self.mode == "throughput" else "latency (30 FPS camera)")
        if self.plan == "threads":
            name += ", thread per stage"
        if self.tuned:
            return name + ", auto (measured settings)"
        return name + (" + CUDA graphs" if self.graphs else "")


def variants(device: str, cuda_graphs: bool, threads_plan: bool) -> list[Variant]:
    graphs = cuda_graphs and device == "cuda"
    # On the CPU the device plan is forced, so the smoke test runs the same code path as the GPU.
    plan = "auto" if device == "cuda" else "device"
    out = [Variant("serial", False)]
    if graphs:
        out.append(Variant("serial", True))
    out.append(Variant("throughput", False, plan))
    if graphs:
        out.append(Variant("throughput", True, plan))
    out.append(Variant("latency", graphs, plan))
    if threads_plan:
        out.append(Variant("throughput", False, "threads"))
    if device == "cuda":
        out += [Variant("throughput", True, plan, tuned=True), Variant("latency", True, plan, tuned=True)]
    return out


def run_mode(pipe: DepthPipeline, images: list[np.ndarray], warmup: int, variant: Variant,
             camera_fps: float | None = None) -> dict[str, Any]:
    """One variant through bench's measurement loop (:func:`tr2m_edge.runtime.bench.measure`)."""
    for _ in pipe.stream(ArraySource(images[:3]), mode="serial"):  # lazy inits / graph captures, one at a time
        pass
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    result, _ = measure(pipe, images[:warmup], images[warmup:], variant.mode, plan=variant.plan,
                        pace_fps=camera_fps, keep_depths=False)
    return {
        "mode": variant.mode if not camera_fps else f"latency ({camera_fps:g} FPS camera)", "frames": result.frames,
        "plan": result.plan or "?", "fps": round(result.fps, 2), "dropped": result.dropped,
        "latency_ms": {k: round(result.latency_ms[k], 3) for k in ("mean", "p50", "p90")},
        "stage_ms": {k: round(v["mean"], 3) for k, v in result.stage_ms.items()},
    }


def check_preset(name: str, device: str, count: int, warmup: int, todo: list[Variant],
                 deadline: float) -> list[dict[str, Any]]:
    if time.perf_counter() > deadline:
        print(f"  {name}: skipped (past the time budget)", flush=True)
        return [{"preset": name, "mode": v.mode, "label": v.label, "cuda_graphs": v.graphs,
                 "error": "skipped: past the --budget-s time budget"} for v in todo]
    cfg = random_encoder_config(get_preset(name))  # hub encoders -> random ones of the published sizes
    t0 = time.perf_counter()
    model = build(cfg, device)
    build_s = time.perf_counter() - t0
    fp16 = device == "cuda"
    images = frames(warmup + count)
    text = torch.randn(1, cfg.head.text_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # fp32, before any fp16 runner casts the shared modules
        scene = model.head.scene_bias(text.to(device)).float().cpu().numpy()
    macs = count_macs(cfg).per_frame
    rows = []
    for variant in todo:
        base = {"preset": name, "mode": variant.mode, "label": variant.label, "cuda_graphs": variant.graphs}
        if time.perf_counter() > deadline:
            print(f"  {name} {variant.label}: skipped (past the time budget)", flush=True)
            rows.append({**base, "error": "skipped: past the --budget-s time budget"})
            continue
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        pipe = None
        try:
            pipe = DepthPipeline.from_model(model, frame_size=FRAME, device=device, fp16=fp16 and not variant.tuned,
                                            cuda_graphs=variant.graphs and not variant.tuned, tune=variant.tuned)
            pipe.caption_state.set("random scene", scene)
            row = run_mode(pipe, images, warmup, variant, camera_fps=30.0 if variant.mode == "latency" else None)
            graphs = {n: bool(getattr(r, "cuda_graph", False)) for n, r in pipe.stages.runners.items()}
            if pipe.tuning is not None:
                row["tuning"] = pipe.tuning.as_dict()
            row["gpu_mem_mb"] = gpu_memory_mb(0) or None
            row["tflops"] = {k: round(2 * macs[k] / (row["stage_ms"][k] * 1e-3) / 1e12, 2)
                             for k in macs if row["stage_ms"].get(k)}
            if PEAK is not None:
                row["peak_fraction"] = {k: round(v * 1e12 / (2 * PEAK.macs_per_s), 4) for k, v in row["tflops"].items()}
        except Exception as exc:  # noqa: BLE001 - one failed variant must not cost the whole GPU run
            print(f"  {name} {variant.label} FAILED: {type(exc).__name__}: {exc}", flush=True)
            rows.append({**base, "error": f"{type(exc).__name__}: {exc}"})
            continue
        finally:
            if pipe is not None:
                try:
                    pipe.close()
                except Exception as exc:  # noqa: BLE001
                    print(f"  {name} {variant.label}: close failed: {exc}", flush=True)
        fallbacks = [n for n, ok in graphs.items() if variant.graphs and not ok]
        row.update(base)
        row.update({
            "input": "x".join(map(str, cfg.preprocess.input_size)), "frame": f"{FRAME[0]}x{FRAME[1]}",
            "precision": (row.get("tuning") or {}).get("chosen", {}).get("depth", "fp16" if fp16 else "fp32"),
            "pipelined": variant.mode != "serial",
            "cuda_graphs": variant.graphs and not fallbacks, "graph_fallbacks": fallbacks,
            "build_s": round(build_s, 2),
            "peak_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        })
        rows.append(row)
        print(f"  {name} {variant.label} [{row['plan']} plan]: {row['fps']} FPS, latency p50 "
              f"{row['latency_ms']['p50']:.2f} ms, {row['dropped']} dropped, stages {row['stage_ms']}"
              + (f", graph capture fell back to eager for {fallbacks}" if fallbacks else ""), flush=True)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return rows


def check_cuda_python(iters: int) -> dict[str, Any]:
    """Pinned H2D of a frame on stream 1, D2H of a depth map on stream 2: sequential vs overlapped."""
    from tr2m_edge.runtime.runners import cuda

    info = cuda.device_info(0)
    s1, s2 = cuda.Stream(), cuda.Stream()
    frame = frames(1)[0]
    depth = np.random.default_rng(0).uniform(0.5, 10, FRAME).astype(np.float32)
    pin_f, pin_d, pin_back = cuda.PinnedBuffer(), cuda.PinnedBuffer(), cuda.PinnedBuffer()
    dev_f, dev_d = cuda.DeviceBuffer(frame.nbytes), cuda.DeviceBuffer(depth.nbytes)
    host_f = pin_f.view(frame.shape, frame.dtype)
    np.copyto(host_f, frame)
    host_d = pin_d.view(depth.shape, depth.dtype)
    np.copyto(host_d, depth)
    cuda.copy_to_device(dev_d, host_d, s2)  # a depth map on the device to read back
    s2.synchronize()
    back = pin_back.view(depth.shape, depth.dtype)
    ev = [cuda.Event() for _ in range(4)]

    def once(overlap: bool) -> tuple[float, float, float]:
        start = time.perf_counter()
        ev[0].record(s1)
        cuda.copy_to_device(dev_f, host_f, s1)
        ev[1].record(s1)
        if not overlap:
            s1.synchronize()
        ev[2].record(s2)
        cuda.copy_to_host(back, dev_d, s2)
        ev[3].record(s2)
        s1.synchronize()
        s2.synchronize()
        return ev[1].elapsed_ms(ev[0]), ev[3].elapsed_ms(ev[2]), (time.perf_counter() - start) * 1e3

    for _ in range(10):
        once(True)
    out: dict[str, Any] = {"device": info.name, "compute_capability": "%d.%d" % info.compute_capability,
                           "frame_bytes": frame.nbytes, "depth_bytes": depth.nbytes, "iters": iters}
    for label, overlap in (("sequential", False), ("two_streams", True)):
        h2d, d2h, wall = zip(*(once(overlap) for _ in range(iters)))
        out[label] = {
            "h2d_ms": {k: round(v, 4) for k, v in percentiles(list(h2d), (50, 90)).items()},
            "d2h_ms": {k: round(v, 4) for k, v in percentiles(list(d2h), (50, 90)).items()},
            "wall_ms": {k: round(v, 4) for k, v in percentiles(list(wall), (50, 90)).items()},
        }
    out["h2d_GBps"] = round(frame.nbytes / (out["two_streams"]["h2d_ms"]["p50"] * 1e-3) / 1e9, 2)
    out["d2h_GBps"] = round(depth.nbytes / (out["two_streams"]["d2h_ms"]["p50"] * 1e-3) / 1e9, 2)
    np.testing.assert_array_equal(back, depth)  # the round trip is exact
    out["round_trip_exact"] = True
    for b in (pin_f, pin_d, pin_back, dev_f, dev_d):
        b.free()
    for s in (s1, s2):
        s.free()
    return out


PEAK = None  # the GPU's measured fp16 rate (set in main)


def check_hang(device: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Serial mode with CUDA graph capture, then the device plan on the same pipeline (it hung once:
    docs/measurements/h100_device_plan_hang_stack.txt), under a watchdog that dumps the stacks."""
    import faulthandler
    import threading

    if device != "cuda":
        return {"skipped": "needs CUDA"}
    torch.manual_seed(0)
    from tr2m_edge.model.tr2m import build_model

    model = build_model(get_preset("tiny")).eval()
    images = frames(6)
    done = threading.Event()
    result: dict[str, Any] = {}

    def body() -> None:
        try:
            with DepthPipeline.from_model(model, frame_size=(70, 98), device="cuda", cuda_graphs=True) as pipe:
                pipe.set_scene("a room")
                small = [np.ascontiguousarray(im[:70, :98]) for im in images]
                serial = list(pipe.stream(small, mode="serial", maps=True))
                piped = list(pipe.stream(small, mode="throughput", maps=True))
                result["plan"] = pipe.executor.plan
                result["max_depth_diff"] = float(max(np.abs(a.depth - b.depth).max() for a, b in zip(serial, piped)))
                result["frames"] = len(piped)
        except Exception as exc:  # noqa: BLE001
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            done.set()

    faulthandler.dump_traceback_later(timeout_s, exit=False)
    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    finished = done.wait(timeout_s + 5)
    faulthandler.cancel_dump_traceback_later()
    result["passed"] = finished and "error" not in result and result.get("frames") == 6
    if not finished:
        result["error"] = f"hung: no result after {timeout_s:.0f} s (stacks on stderr)"
    return result


def goals(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's GPU goals, checked against this run's rows."""
    def best(preset: str, mode: str) -> float:
        return max((r["fps"] for r in report["results"] if r.get("preset") == preset and r.get("mode") == mode
                    and "error" not in r), default=0.0)

    dino = max((r.get("peak_fraction", {}).get("image_encoder", 0.0) for r in report["results"]
                if r.get("preset") == "paper" and "error" not in r), default=0.0)
    drops = [r["dropped"] for r in report["results"] if r.get("mode", "").startswith("latency") and "error" not in r
             and r.get("preset") == "paper"]
    return {
        "paper_pipelined_fps>=200": (best("paper", "throughput"), best("paper", "throughput") >= 200),
        "edge_pipelined_fps>=400": (best("edge", "throughput"), best("edge", "throughput") >= 400),
        "dinov2_l_peak_fraction>=0.30": (dino, dino >= 0.30),
        "latency_30fps_drops==0": (min(drops) if drops else None, bool(drops) and min(drops) == 0),
        "hang_test": report.get("hang", {}).get("passed"),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [f"GPU check on {report['device']} (torch {report['torch']}, {report['when']})", "",
             "| preset | input | precision | variant | plan | FPS | latency mean / p50 / p90 (ms) "
             "| pre | depth | image | head | launch | peak MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        if "error" in r:
            status = r["error"] if r["error"].startswith("skipped") else f"failed: {r['error'][:80]}"
            lines.append(f"| {r['preset']} | | | {r.get('label', r['mode'])} | | {status} | | | | | | | |")
            continue
        label = r.get("label", r["mode"])
        if r.get("graph_fallbacks"):
            label += f" (eager: {', '.join(r['graph_fallbacks'])})"
        if r.get("dropped"):
            label += f", {r['dropped']} dropped"
        lat, st = r["latency_ms"], r["stage_ms"]

        def ms(key: str) -> str:
            return f"{st[key]:.2f}" if key in st else "-"

        lines.append(
            f"| {r['preset']} | {r['input']} | {r['precision']} | {label} | {r.get('plan', '?')} | {r['fps']} | "
            f"{lat['mean']:.2f} / {lat['p50']:.2f} / {lat['p90']:.2f} | {ms('preprocess')} | {ms('depth')} | "
            f"{ms('image_encoder')} | {ms('head')} | {ms('launch')} | {r['peak_mem_mb']} |")
    cp = report.get("cuda_python")
    if isinstance(cp, dict) and "two_streams" in cp:
        lines += ["", f"cuda-python pinned copies on {cp['device']} (p50 ms): frame {cp['frame_bytes']} B H2D "
                      f"{cp['two_streams']['h2d_ms']['p50']}, depth {cp['depth_bytes']} B D2H {cp['two_streams']['d2h_ms']['p50']}; "
                      f"wall per pair: sequential {cp['sequential']['wall_ms']['p50']}, two streams "
                      f"{cp['two_streams']['wall_ms']['p50']} ({cp['h2d_GBps']} / {cp['d2h_GBps']} GB/s)"]
    elif cp:
        lines += ["", f"cuda-python: {cp}"]
    peak = report.get("peak")
    if peak:
        lines += ["", f"Measured fp16 peak: {2 * peak['macs_per_s'] / 1e12:.0f} TFLOP/s ({peak['how']}). Per component "
                      "TFLOP/s (fraction of peak):"]
        for r in report["results"]:
            if r.get("tflops"):
                parts = ", ".join(f"{k} {v} ({r.get('peak_fraction', {}).get(k, 0):.1%})" for k, v in r["tflops"].items())
                lines.append(f"- {r['preset']} {r.get('label', r['mode'])}: {parts}; GPU memory {r.get('gpu_mem_mb')}")
    for r in report["results"]:
        if r.get("tuning"):
            lines.append(f"- {r['preset']} measured settings: {r['tuning']['chosen']}")
    if report.get("hang"):
        lines += ["", f"Device plan after serial CUDA-graph capture: {report['hang']}"]
    if report.get("goals"):
        lines += ["", "Goals: " + "; ".join(f"{k}: {v}" for k, v in report["goals"].items())]
    lines += ["", "Latency is capture -> metres per frame; in throughput mode it includes queueing (nothing is dropped), "
                  "in latency mode the source is a 30 FPS camera stand-in and stale frames are dropped.",
              "Stage times (ms): serial = host wall time per stage (each stage synchronises); device plan on CUDA = "
              "CUDA-event time on the GPU (pre includes the frame's H2D copy, head the depth map's D2H copy; depth "
              "and image run concurrently on two streams), launch = host time to issue one frame's GPU work."]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    md = out.with_suffix(".md")
    md.write_text(markdown(report))
    return md


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where to run (cpu: smoke test, fp32)")
    ap.add_argument("--frames", type=int, default=100, help="measured frames per variant")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up frames per variant (default 10 on CUDA, 1 on CPU)")
    ap.add_argument("--presets", default=None, help="comma list (default: tiny,edge,paper on CUDA; tiny,edge on CPU)")
    ap.add_argument("--no-cuda-graphs", action="store_true", help="skip the CUDA graph variants")
    ap.add_argument("--threads-plan", action="store_true",
                    help="also measure the one-thread-per-stage plan (pipelined, eager) for comparison")
    ap.add_argument("--budget-s", type=float, default=170.0,
                    help="skip the variants that would start after this many seconds (the cuda-python timing still runs)")
    ap.add_argument("--copy-iters", type=int, default=200, help="iterations of the cuda-python copy timing")
    ap.add_argument("--out", type=Path, required=True, help="JSON report path (the markdown table goes next to it)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but PyTorch sees no CUDA GPU; use --device cpu for a smoke test.")
    if args.device == "cpu":
        torch.set_num_threads(1)  # OpenMP barriers on a busy small CPU are slower than one thread
    else:
        torch.backends.cudnn.benchmark = True
    presets = [p.strip() for p in (args.presets or ("tiny,edge,paper" if args.device == "cuda" else "tiny,edge")).split(",")]
    warmup = args.warmup if args.warmup is not None else (10 if args.device == "cuda" else 1)
    todo = variants(args.device, not args.no_cuda_graphs, args.threads_plan)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
        "torch": torch.__version__, "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M"),
        "frames": args.frames, "warmup": warmup, "variants": [v.label for v in todo], "results": [],
    }
    global PEAK
    PEAK = cuda_peak() if args.device == "cuda" else None
    if PEAK is not None:
        report["peak"] = dataclasses.asdict(PEAK)
        print(f"fp16 peak: {2 * PEAK.macs_per_s / 1e12:.0f} TFLOP/s", flush=True)
    report["hang"] = check_hang(args.device)
    print("device plan after serial graph capture:", report["hang"], flush=True)
    start = time.perf_counter()
    deadline = start + args.budget_s
    for name in presets:
        print(f"{name}:", flush=True)
        try:
            report["results"] += check_preset(name, args.device, args.frames, warmup, todo, deadline)
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory building a preset: report it, go on
            print(f"  {name} FAILED: {type(exc).__name__}: {exc}", flush=True)
            report["results"].append({"preset": name, "mode": "build", "label": "build", "cuda_graphs": False,
                                      "error": f"{type(exc).__name__}: {exc}"})
        report["total_s"] = round(time.perf_counter() - start, 1)
        write_report(report, args.out)  # a run cut short still leaves what it measured
    try:
        report["cuda_python"] = check_cuda_python(args.copy_iters)
    except Exception as exc:  # noqa: BLE001 - reported, e.g. no CUDA device on a CPU smoke test
        report["cuda_python"] = {"skipped": f"{type(exc).__name__}: {exc}"}
    print("cuda-python:", json.dumps(report["cuda_python"])[:400], flush=True)
    report["goals"] = goals(report)
    report["total_s"] = round(time.perf_counter() - start, 1)
    md = write_report(report, args.out)
    print(markdown(report))
    print(f"wrote {args.out} and {md} in {report['total_s']} s")


if __name__ == "__main__":
    main()
