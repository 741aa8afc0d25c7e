"""``tr2m-edge bench``: latency, throughput, memory and accuracy drift of a bundle.

Drives the same executor as ``run`` over pre-rendered synthetic frames (rendering stays
out of the timings): for each mode, a warm-up pass and then a measured pass, giving
per-stage latency percentiles, end-to-end latency (capture -> result; in throughput mode
it includes time spent queued) and throughput. Modes, each with its own sessions:

    ``serial``        one frame at a time, every session with all threads (spinning on);
    ``serial-split``  one frame at a time, with the pipelined thread plan (half the
                      threads per session, no spinning), to separate the effect of
                      pipelining from that of the thread settings;
    ``throughput``    pipelined, nothing dropped.

The speedup compares ``throughput`` with the faster serial run. Drift is measured
against the fp32 ONNX Runtime CPU reference on the same frames. :func:`compare_precisions`
(``bench --precision fp32,int8``) measures several precisions side by side in one run.
"""

from __future__ import annotations

import logging
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tr2m_edge.bundle import Bundle, open_bundle
from tr2m_edge.errors import ConfigError
from tr2m_edge.parity import depth_drift
from tr2m_edge.runtime.compute import component_rates, device_peak
from tr2m_edge.runtime.pipeline import DepthPipeline, cpu_threads
from tr2m_edge.runtime.plans import check_plan
from tr2m_edge.runtime.results import percentiles
from tr2m_edge.runtime.runners.base import Runner
from tr2m_edge.runtime.sources import ArraySource, PacedSource

log = logging.getLogger(__name__)
STAGES = ("preprocess", "depth", "image_encoder", "head", "postprocess")
DEFAULT_CAPTION = "a room with a wooden floor"
BENCH_MODES = {"serial": ("serial", False), "serial-split": ("serial", True), "throughput": ("throughput", True)}


@dataclass
class ModeResult:
    """One mode's measured pass."""

    mode: str
    frames: int
    seconds: float
    fps: float
    latency_ms: dict[str, float]  # end-to-end, capture -> result: mean, p50, p90, p99
    stage_ms: dict[str, dict[str, float]]  # per stage: mean, p50, p90, p99
    dropped: int = 0
    plan: str = ""  # the executor plan that ran: serial, threads (CPU runners) or device (GPU runners)


@dataclass
class BenchReport:
    """Everything ``bench`` measured."""

    bundle: str
    backend: str
    reason: str
    precision: str
    threads: int
    frame_size: tuple[int, int]
    input_size: tuple[int, int]
    caption: str
    results: list[ModeResult] = field(default_factory=list)
    memory_mb: dict[str, float] = field(default_factory=dict)
    drift: dict[str, float] | None = None
    drift_reference: str = "ort-cpu fp32 (serial)"
    torch_tuning: dict[str, Any] | None = None  # torch backend on a GPU: every measured setting, the chosen ones
    compute: dict[str, Any] | None = None  # GMAC/s per component and share of the peak (runtime/compute.py)

    def result(self, mode: str) -> ModeResult | None:
        return next((r for r in self.results if r.mode == mode), None)

    @property
    def speedup(self) -> float | None:
        """Pipelined (throughput mode) FPS over the faster serial run's FPS."""
        piped = self.result("throughput")
        serial = [r.fps for r in self.results if r.mode.startswith("serial") and r.fps > 0]
        return piped.fps / max(serial) if piped and serial else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["speedup"] = self.speedup
        return d


def gpu_memory_mb(device_id: int | None) -> dict[str, float]:
    """GPU memory in use on the benchmarked device (cudaMemGetInfo, any backend); {} without a GPU."""
    if device_id is None:
        return {}
    try:
        from tr2m_edge.runtime.runners.cuda import device_memory_mb

        return device_memory_mb(device_id)
    except Exception as exc:  # noqa: BLE001 - no cuda-python or no driver: the other fields still count
        log.debug("no GPU memory reading: %s", exc)
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info(device_id)
            return {"gpu_used": round((total - free) / 2**20, 1), "gpu_total": round(total / 2**20, 1)}
        return {}


def _rss_mb() -> dict[str, float]:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak_kb / 1024 if sys.platform != "darwin" else peak_kb / 2**20
    current = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    except OSError:
        pass
    out = {"rss_peak": round(peak, 1), "rss_now": round(current, 1)}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        out["cuda_peak_allocated"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def render_frames(count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``count`` synthetic RGB frames of ``size`` (H, W)."""
    from tr2m_edge.synthetic import iter_scenes

    return [s.rgb for s in iter_scenes(count, size=size, seed=seed)]


def measure(pipe: DepthPipeline, warm: list[np.ndarray], frames: list[np.ndarray], mode: str, *,
            plan: str = "auto", pace_fps: float | None = None,
            keep_depths: bool = True) -> tuple[ModeResult, list[np.ndarray]]:
    """The measurement loop of ``bench`` (and of the GPU check): ``warm`` frames, then ``frames`` timed.

    Args:
        pipe: the pipeline (its caption set).
        warm: warm-up frames, run in ``mode`` (serially in latency mode: nothing to drop yet).
        frames: the measured frames.
        mode: ``serial``, ``throughput`` or ``latency``.
        plan: the executor plan of the pipelined modes (``auto``, ``serial``, ``threads``, ``device``).
        pace_fps: feed the measured frames as a live camera at this rate (latency mode).
        keep_depths: return the depth maps (for the drift check).

    Returns:
        The mode's result and (when kept) the depth maps in order.
    """
    if warm:
        for _ in pipe.stream(ArraySource(warm), mode="serial" if mode == "latency" else mode, plan=plan):
            pass
    depths: list[np.ndarray] = []
    stage: dict[str, list[float]] = {k: [] for k in STAGES}
    latency: list[float] = []
    source = PacedSource(frames, pace_fps) if pace_fps else ArraySource(frames)
    start = time.perf_counter()
    count = 0
    for r in pipe.stream(source, mode=mode, plan=plan):
        count += 1
        if keep_depths:
            depths.append(r.depth)
        latency.append(r.latency_ms)
        for k, v in r.stage_ms.items():
            stage.setdefault(k, []).append(v)
    seconds = time.perf_counter() - start
    counters = pipe.executor.counters.as_dict() if pipe.executor else {}
    result = ModeResult(
        mode=mode, frames=count, seconds=round(seconds, 4), fps=float(f"{count / seconds:.4g}"),
        latency_ms=percentiles(latency), stage_ms={k: percentiles(v) for k, v in stage.items() if v},
        dropped=counters.get("dropped", 0), plan=pipe.executor.plan if pipe.executor else "",
    )
    return result, depths


def time_runners(runners: dict[str, Runner], feeds: dict[str, np.ndarray], repeats: int) -> dict[str, tuple[float, float]]:
    """Median and minimum latency (ms) of activated runners on the same ``feeds``.

    One warm-up call each, then the runners run alternately (A, B, A, B, ...) so that load
    from other processes on a shared machine hits all of them alike.
    """
    for runner in runners.values():
        runner.infer(feeds)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(max(1, repeats)):
        for k, runner in runners.items():
            t0 = time.perf_counter()
            runner.infer(feeds)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


@dataclass
class PrecisionBench:
    """``bench --precision fp32,int8``: one :class:`BenchReport` per precision, measured side by side."""

    reports: list[BenchReport]

    def summary(self) -> list[dict[str, Any]]:
        """Per precision: best serial and pipelined FPS, both relative to the first precision, and the drift."""
        base = self.reports[0]

        def fps(r: BenchReport, serial: bool) -> float | None:
            vals = [m.fps for m in r.results if m.mode.startswith("serial") == serial and m.fps > 0]
            return max(vals) if vals else None

        rows = []
        for r in self.reports:
            row: dict[str, Any] = {"precision": r.precision, "drift": r.drift}
            for key, serial in (("serial_fps", True), ("throughput_fps", False)):
                mine, ref = fps(r, serial), fps(base, serial)
                row[key] = mine
                row[key.replace("_fps", "_vs_first")] = mine / ref if mine and ref else None
            rows.append(row)
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {"precisions": [r.precision for r in self.reports], "summary": self.summary(),
                "reports": [r.as_dict() for r in self.reports]}


def parse_precisions(text: str) -> tuple[str, ...]:
    """``"fp32,int8"`` -> ("fp32", "int8"), each a known precision, no repeats."""
    from tr2m_edge.runtime.pipeline import PRECISIONS

    items = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [p for p in items if p not in PRECISIONS]
    if bad or not items:
        raise ConfigError(f"Unknown precision(s) {bad or text!r}. Available: {', '.join(PRECISIONS)} "
                          "(comma-separated to compare, e.g. fp32,int8).")
    return items


def run_bench(
    bundle: str | Path | Bundle, *, backend: str = "auto", precision: str = "auto", frames: int = 30,
    warmup: int = 5, modes: tuple[str, ...] = ("serial", "serial-split", "throughput"), threads: int | None = None,
    caption: str | None = None, checkpoint: str | Path | None = None, reference: bool = True,
    seed: int = 0, progress: Callable[[str], None] | None = None, device_id: int | None = 0,
    cache_captions: bool = True, plan: str = "auto", peak_gflops: float | None = None,
) -> BenchReport:
    """Benchmark ``bundle`` on ``backend`` in each of ``modes`` (``serial``, ``serial-split``, ``throughput``).

    ``caption`` defaults to the bundle's first cached caption, else :data:`DEFAULT_CAPTION`;
    ``device_id`` and ``cache_captions`` are :meth:`DepthPipeline.from_bundle`'s; ``plan`` is
    the executor plan of the pipelined modes (``auto | serial | threads | device``; each
    result records the plan that ran).
    Achieved GMAC/s per component (the manifest's MAC counts over the measured stage times)
    are compared with ``peak_gflops`` (GFLOP/s) or, without it, a matmul probe of the device
    (runtime/compute.py).

    Raises:
        ConfigError: frames < 1 or an unknown mode.
        BundleError / BackendError: as :meth:`DepthPipeline.from_bundle`.
    """
    return compare_precisions(bundle, precisions=(precision,), backend=backend, frames=frames, warmup=warmup,
                              modes=modes, threads=threads, caption=caption, checkpoint=checkpoint,
                              reference=reference, seed=seed, progress=progress, device_id=device_id,
                              cache_captions=cache_captions, plan=plan, peak_gflops=peak_gflops).reports[0]


def compare_precisions(
    bundle: str | Path | Bundle, *, precisions: tuple[str, ...], backend: str = "auto", frames: int = 30,
    warmup: int = 5, modes: tuple[str, ...] = ("serial", "serial-split", "throughput"), threads: int | None = None,
    caption: str | None = None, checkpoint: str | Path | None = None, reference: bool = True,
    seed: int = 0, progress: Callable[[str], None] | None = None, device_id: int | None = 0,
    cache_captions: bool = True, plan: str = "auto", peak_gflops: float | None = None,
) -> PrecisionBench:
    """:func:`run_bench` for several precisions in one run, on the same frames.

    The measurements interleave: each mode runs for every precision before the next mode,
    in alternating order (A B, B A, A B), so load from other processes on a shared machine,
    also load that rises or falls during the run, hits the precisions alike. Drift is
    measured for every precision against one fp32 ONNX Runtime CPU reference. ``caption``,
    ``device_id``, ``cache_captions``, ``plan`` and ``peak_gflops`` are as in :func:`run_bench`.

    Raises:
        ConfigError: frames < 1, an unknown mode or precision.
        BundleError / BackendError: as :meth:`DepthPipeline.from_bundle` (e.g. no usable INT8 variant).
    """
    if frames < 1 or warmup < 0:
        raise ConfigError(f"bench needs frames >= 1 and warmup >= 0; got {frames} and {warmup}.")
    unknown = [m for m in modes if m not in BENCH_MODES]
    if unknown or not modes:
        raise ConfigError(f"Unknown bench mode(s) {unknown or modes}. Available: {', '.join(BENCH_MODES)}.")
    check_plan(plan)
    if not precisions:
        raise ConfigError("bench needs at least one precision.")
    say = progress or (lambda msg: None)
    given = device_peak("given", peak_gflops) if peak_gflops is not None else None  # a bad --peak fails now
    bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
    for precision in precisions:  # refuse a missing or unusable variant before any work
        bundle.check_usable(precision)
        if precision not in ("auto", "fp32") and not any(f.precision == precision for f in bundle.manifest.files):
            bundle.require("depth", precision)
    cfg = bundle.config
    frame_size = tuple(bundle.manifest.frame_size or cfg.preprocess.input_size)
    threads = threads or cpu_threads()
    say(f"rendering {frames + warmup} synthetic frames at {frame_size[1]}x{frame_size[0]}")
    images = render_frames(frames + warmup, frame_size, seed)
    warm, measured = images[:warmup], images[warmup:]
    reports: dict[str, BenchReport] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    for turn, label in enumerate(modes):
        mode, split = BENCH_MODES[label]
        for precision in precisions if turn % 2 == 0 else precisions[::-1]:  # ABBA: a load trend hits all alike
            pipe = DepthPipeline.from_bundle(bundle, backend, precision=precision, threads=threads,
                                             split_threads=split, checkpoint=checkpoint, verify=False,
                                             device_id=device_id, cache_captions=cache_captions)
            with pipe:
                caption = caption or next(iter(pipe.cached_captions.values()), DEFAULT_CAPTION)
                pipe.set_scene(caption)
                device = pipe.backend.device
                report = reports.get(precision)
                if report is None:
                    report = reports[precision] = BenchReport(
                        bundle=str(bundle.root), backend=pipe.backend.name, reason=pipe.backend.reason,
                        precision=precision, threads=threads, frame_size=frame_size,
                        input_size=tuple(cfg.preprocess.input_size), caption=caption,
                        torch_tuning=pipe.tuning.as_dict() if pipe.tuning is not None else None,
                    )
                tag = f" {precision}" if len(precisions) > 1 else ""
                say(f"{label}{tag}: {warmup} warm-up + {frames} frames on {pipe.backend.name}")
                result, depths = measure(pipe, warm, measured, mode, plan=plan)
                result.mode = label
                report.results.append(result)
                if mode == "throughput" or precision not in outputs:
                    outputs[precision] = depths  # drift of the pipelined outputs when there are some
    if reference and outputs:
        say("fp32 reference on ort-cpu")
        with DepthPipeline.from_bundle(bundle, "ort-cpu", precision="fp32", threads=threads, split_threads=False,
                                       verify=False, cache_captions=cache_captions) as ref:
            ref.set_scene(caption)
            ref_depths = [r.depth for r in ref.stream(ArraySource(measured), mode="serial")]
        for precision, depths in outputs.items():
            reports[precision].drift = depth_drift(ref_depths, depths)
    memory = {**_rss_mb(), **(gpu_memory_mb(device_id) if next(iter(reports.values())).backend != "ort-cpu" else {})}
    for report in reports.values():
        report.memory_mb = memory
    if bundle.manifest.macs is not None:
        say("compute rate: " + ("given with --peak" if given else f"matmul probe of the {device}"))
        peak = given or device_peak(device)
        for report in reports.values():
            report.compute = component_rates(bundle.manifest.macs, report.results, peak)
    return PrecisionBench([reports[p] for p in precisions])
