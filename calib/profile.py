"""Where the time goes, per op type, with ONNX Runtime's profiler; the measurement behind DEFAULT_OPS.

:func:`op_type_profile` runs one graph with ``SessionOptions.enable_profiling`` and sums
the kernel times per op type (after ONNX Runtime's fusions, so a quantised Conv shows up
as QLinearConv). :func:`compare_op_choices` quantises one component of a bundle with
each candidate op-type set (calibrated on a few synthetic frames) and times the fp32
graph and every variant interleaved (A, B, C, A, B, C, ...: load from other processes
hits all alike), with the top op types of each. The command line::

    python -m tr2m_edge.calib.profile BUNDLE --component depth \\
        --choices "Conv,Gemm,MatMul;Conv,Gemm,MatMul,Softmax;Conv;Gemm,MatMul" --json out.json

prints and writes the table the default op types were chosen from; without ``--choices``
it profiles the bundle's own fp32 / fp16 / int8 files of the component.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tr2m_edge.bundle import Bundle, open_bundle
from tr2m_edge.calib.calibrate import bundle_tokenizer, caption_biases, fp32_runners
from tr2m_edge.calib.data import FeedReader, frame_stages, record_feeds
from tr2m_edge.calib.quantize import QuantSettings, parse_ops, quantize_graph
from tr2m_edge.runtime.pipeline import cpu_threads
from tr2m_edge.runtime.runners.base import activated
from tr2m_edge.runtime.runners.onnxrt import OrtRunner
from tr2m_edge.synthetic import iter_scenes

log = logging.getLogger(__name__)


def op_type_profile(path: str | Path, feed: dict[str, np.ndarray], *, repeats: int = 3,
                    threads: int | None = None) -> dict[str, float]:
    """Milliseconds per run spent in each op type of ``path`` (ONNX Runtime CPU, after its fusions)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads or cpu_threads()
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="tr2m-profile-") as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        session.run(None, feed)  # warm-up, counted out below
        for _ in range(repeats):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_run: Counter[str] = Counter()
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            per_run[e["args"]["op_name"]] += e["dur"]
    runs = repeats + 1
    return {op: round(us / runs / 1e3, 3) for op, us in per_run.most_common()}


def _timings(paths: dict[str, Path], feed: dict[str, np.ndarray], repeats: int, threads: int) -> dict[str, dict[str, float]]:
    """Median wall and process-CPU milliseconds per variant, run interleaved (one warm-up each).

    CPU time (all threads of this process) is the steadier number on a shared machine:
    other processes' load stretches the wall time, much less the work done.
    """
    runners = {k: OrtRunner(p, providers=("cpu",), intra_op_threads=threads, name=k) for k, p in paths.items()}
    wall: dict[str, list[float]] = {k: [] for k in paths}
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    with activated(runners) as active:
        for runner in active.values():
            runner.infer(feed)
        for _ in range(max(1, repeats)):
            for k, runner in active.items():
                w0, c0 = time.perf_counter(), time.process_time()
                runner.infer(feed)
                wall[k].append((time.perf_counter() - w0) * 1e3)
                cpu[k].append((time.process_time() - c0) * 1e3)
    first = next(iter(paths))
    base_wall, base_cpu = statistics.median(wall[first]), statistics.median(cpu[first])
    return {k: {"median_ms": round(statistics.median(wall[k]), 1), "min_ms": round(min(wall[k]), 1),
                "median_cpu_ms": round(statistics.median(cpu[k]), 1),
                "speedup": round(base_wall / statistics.median(wall[k]), 3),
                "speedup_cpu": round(base_cpu / statistics.median(cpu[k]), 3)} for k in paths}


def compare_op_choices(bundle: Bundle, component: str, choices: Sequence[tuple[str, ...]], *, frames: int = 4,
                       repeats: int = 5, threads: int | None = None, seed: int = 0,
                       workdir: str | Path | None = None) -> dict[str, Any]:
    """Quantise ``component`` with each op-type set in ``choices`` and time/profile it against fp32.

    Returns a JSON-able dict: per variant (``fp32`` and each choice) the median and minimum
    latency, the speed-up over fp32, the graph's relative output error against fp32 on a
    frame not used to calibrate, and its ten most expensive op types.
    """

    threads = threads or cpu_threads()
    size = tuple(bundle.manifest.frame_size or bundle.config.preprocess.input_size)
    images = [s.rgb for s in iter_scenes(frames + 1, size=size, seed=seed)]
    runners = fp32_runners(bundle, threads)
    with activated(runners) as ref:
        bias = caption_biases(ref, bundle_tokenizer(bundle), ["a photo of a scene"])["a photo of a scene"]
        feeds = record_feeds(frame_stages(ref, bundle.config, bundle.manifest.frame_size, "profile"), images,
                             [bias] * len(images), [component])[component]
    test_feed = feeds.pop()
    with tempfile.TemporaryDirectory(prefix="tr2m-opchoice-", dir=workdir) as tmp:
        paths = {"fp32": bundle.path(bundle.require(component, "fp32"))}
        stats = {}
        for ops in choices:
            name = ",".join(ops)
            paths[name] = Path(tmp) / f"{component}.{len(paths)}.int8.onnx"
            stats[name] = quantize_graph(paths["fp32"], paths[name], FeedReader(component, feeds), QuantSettings(ops=ops),
                                         workdir=tmp)
        result = _timings(paths, test_feed, repeats, threads)
        outputs = {}
        for name, path in paths.items():
            with activated({name: OrtRunner(path, providers=("cpu",), intra_op_threads=threads)}) as one:
                outputs[name] = next(iter(one.values())).infer(test_feed)
            result[name]["profile_ms"] = dict(list(op_type_profile(path, test_feed, threads=threads).items())[:10])
            result[name]["quantized"] = stats.get(name, {}).get("quantized", {})
    for name, outs in outputs.items():
        errs = [float(np.mean(np.abs(outs[k] - v)) / (np.mean(np.abs(v)) + 1e-12)) for k, v in outputs["fp32"].items()]
        result[name]["mean_rel_error"] = round(max(errs), 5)
    return {"bundle": str(bundle.root), "component": component, "threads": threads, "frames": frames,
            "repeats": repeats, "load_average": os.getloadavg(), "variants": result}


def profile_bundle_files(bundle: Bundle, component: str, *, repeats: int = 5, threads: int | None = None,
                         seed: int = 0) -> dict[str, Any]:
    """Time and profile the bundle's own fp32 / fp16 / int8 ONNX files of ``component``, interleaved."""

    threads = threads or cpu_threads()
    size = tuple(bundle.manifest.frame_size or bundle.config.preprocess.input_size)
    frame = next(iter_scenes(1, size=size, seed=seed)).rgb
    with activated(fp32_runners(bundle, threads)) as ref:
        bias = caption_biases(ref, bundle_tokenizer(bundle), ["a photo of a scene"])["a photo of a scene"]
        feed = record_feeds(frame_stages(ref, bundle.config, bundle.manifest.frame_size, "profile"), [frame], [bias],
                            [component])[component][0]
    paths = {p: bundle.path(e) for p in ("fp32", "fp16", "int8") if (e := bundle.manifest.find(component, p))}
    result = _timings(paths, feed, repeats, threads)
    for name, path in paths.items():
        result[name]["profile_ms"] = dict(list(op_type_profile(path, feed, threads=threads).items())[:10])
    return {"bundle": str(bundle.root), "component": component, "threads": threads, "repeats": repeats,
            "load_average": os.getloadavg(), "variants": result}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tr2m_edge.calib.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="bundle folder")
    parser.add_argument("--component", default="depth", help="depth, image_encoder or head")
    parser.add_argument("--choices", default=None, help="';'-separated op-type sets to quantise and compare")
    parser.add_argument("--frames", type=int, default=4, help="synthetic calibration frames per choice")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant (interleaved)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    bundle = open_bundle(args.bundle)
    if args.choices:
        choices = [parse_ops(c) for c in args.choices.split(";") if c.strip()]
        result = compare_op_choices(bundle, args.component, choices, frames=args.frames, repeats=args.repeats,
                                    threads=args.threads)
    else:
        result = profile_bundle_files(bundle, args.component, repeats=args.repeats, threads=args.threads)
    _print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + os.linesep)


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['component']}: {result['threads']} threads, load average {result['load_average'][0]:.2f}")
    for col in ("variant", "median ms", "CPU ms", "x (wall)", "x (CPU)", "rel. error", "top op types (ms per run)"):
        table.add_column(col)
    for name, v in result["variants"].items():
        top = ", ".join(f"{op} {ms:.0f}" for op, ms in list(v["profile_ms"].items())[:5])
        error = v.get("mean_rel_error")
        table.add_row(name, f"{v['median_ms']:.0f}", f"{v['median_cpu_ms']:.0f}", f"{v['speedup']:.2f}",
                      f"{v['speedup_cpu']:.2f}", "-" if error is None else f"{error:.3g}", top)
    Console(soft_wrap=True).print(table)


if __name__ == "__main__":
    main()
