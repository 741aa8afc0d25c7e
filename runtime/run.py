"""``tr2m-edge run`` as library calls: options in, bundle + source + sinks + pipeline set up,
frames streamed until the end, Ctrl-C or ``q``.

:func:`run_from_options` does the set-up from :class:`RunOptions` (the ``run`` command's
options, declared once here with their help texts; the CLI builds its parameters from
them); cheap checks come first (bundle manifest and hashes, sink options, opening the
source), so a wrong camera index or a headless ``--show`` fails in one line before any
model loads. :func:`run_stream` streams a source through a pipeline into sinks.

Ctrl-C (SIGINT) or SIGTERM (systemd, docker, ROS shutdown) stops capturing and drains:
every frame already captured is still processed and written, then every sink is closed
(videos finalised, files complete); the command then exits 130 / 143, a complete run 0. A
second signal aborts at once (sinks are still closed). The same happens at the end of
the stream and when a sink asks to stop (the window's ``q`` key).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console
from rich.markup import escape

from tr2m_edge.bundle import open_bundle
from tr2m_edge.config import parse_width_height
from tr2m_edge.errors import InputError, OutputError
from tr2m_edge.runtime.backends import resolve_device
from tr2m_edge.runtime.caption_input import CaptionFileWatcher, CaptionWorker, StdinCaptionReader
from tr2m_edge.runtime.executor import Executor, Mode
from tr2m_edge.runtime.pipeline import DepthPipeline
from tr2m_edge.runtime.plans import PLAN_HELP, check_plan
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.sinks import DepthColouriser, DepthFileSink, DisplaySink, Sink, StatsSink, VideoSink
from tr2m_edge.runtime.sinks.overlay import SettlingColouriser
from tr2m_edge.runtime.sources import FrameSource, make_source, parse_camera_size

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What one run did."""

    backend: str
    mode: str
    plan: str = ""  # the executor plan that ran: serial, threads or device
    frames_read: int = 0
    frames_written: int = 0
    dropped: int = 0
    skipped: int = 0
    converted: int = 0
    nonfinite_values: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    signal: str | None = None  # SIGINT / SIGTERM when a signal stopped the run (it drained first)
    captions: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames_written / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = round(self.fps, 3)
        return d

    @property
    def exit_code(self) -> int:
        """0 for a complete run; 130 / 143 when SIGINT / SIGTERM stopped it (after draining)."""
        if self.signal is not None:
            return SIGNAL_EXIT[signal.Signals[self.signal]]
        return 130 if self.interrupted else 0

    def describe(self) -> str:
        """The one-line summary ``run`` prints at the end."""
        extra = f", {self.dropped} dropped (latency mode)" if self.dropped else ""
        extra += f", {self.skipped} skipped" if self.skipped else ""
        extra += f", {self.converted} converted" if self.converted else ""
        extra += f", {self.nonfinite_values} non-finite values clamped" if self.nonfinite_values else ""
        state = "interrupted: drained and closed" if self.interrupted else "done"
        stop = f"; stopped by {self.signal}, exit status {self.exit_code}" if self.signal else ""
        return (f"{state}: {self.frames_read} frames read, {self.frames_written} written{extra} "
                f"in {self.seconds:.1f} s ({self.fps:.1f} FPS, {self.backend}, {self.mode} mode"
                f"{f', {self.plan} plan' if self.plan else ''}){stop}")


SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number, as shells report it


class _DrainOnSignal:
    """First SIGINT or SIGTERM: drain (executor.stop); a second one: KeyboardInterrupt. Main thread only."""

    def __init__(self, executor: Executor, on_first: Callable[[str], None]) -> None:
        self.executor = executor
        self.on_first = on_first
        self.previous: dict[int, Any] = {}
        self.signum: int | None = None

    @property
    def fired(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "_DrainOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNAL_EXIT:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.fired:
            raise KeyboardInterrupt
        self.signum = signum
        self.on_first(signal.Signals(signum).name)
        self.executor.stop()

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)


def run_stream(
    pipeline: DepthPipeline, source: FrameSource, sinks: Sequence[Sink], *,
    mode: str | Mode = Mode.THROUGHPUT, max_frames: int | None = None, queue_size: int = 2,
    maps: bool = False, handle_sigint: bool = True, on_result: Callable[[MetricDepth], None] | None = None,
    plan: str = "auto",
) -> RunSummary:
    """Run ``source`` through ``pipeline`` into ``sinks``; always closes the sinks.

    Args:
        mode: ``throughput`` (no drops, order kept), ``latency`` (newest frame wins) or ``serial``.
        max_frames: stop after reading this many frames.
        handle_sigint: install the drain-on-SIGINT/SIGTERM handler (main thread only).
        on_result: called per result after the sinks (progress displays, tests).
        plan: the executor plan (``auto``, ``serial``, ``threads``, ``device``); the one that ran is
            :attr:`RunSummary.plan`.
    """
    if max_frames is not None:
        source.limit = max_frames
    executor = pipeline.executor_for(mode, queue_size=queue_size, maps=maps, plan=plan)
    summary = RunSummary(backend=pipeline.backend.name, mode=Mode.parse(mode).value, plan=executor.plan)
    start = time.perf_counter()
    drain = _DrainOnSignal(executor, lambda name: log.warning("%s: stopping capture and draining the pipeline "
                                                              "(send it again to abort)", name))
    captions: list[str] = []
    results = executor.run(source)
    try:
        with (drain if handle_sigint else _Nothing()):
            for result in results:
                for sink in sinks:
                    try:
                        sink.write(result)
                    except OSError as exc:  # disk full, permissions, a removed folder: stop, keep what is written
                        raise OutputError(
                            f"Writing the {sink.name} output failed at frame {result.index} ({exc.strerror or exc}); "
                            f"the {summary.frames_written} frame(s) written before it are complete.") from None
                summary.frames_written += 1
                if not captions or captions[-1] != result.caption:
                    captions.append(result.caption)
                if on_result is not None:
                    on_result(result)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        results.close()  # stops and joins the pipeline threads if we left early
        for sink in sinks:
            if source.skipped:
                sink.note_skipped(list(source.skipped))
        summary.interrupted = summary.interrupted or drain.fired
        if drain.signum is not None:
            summary.signal = signal.Signals(drain.signum).name
        errors = []
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - close the others, then report
                errors.append(exc)
        summary.seconds = time.perf_counter() - start
        counters = executor.counters.as_dict()
        summary.frames_read = counters["read"]
        summary.dropped = counters["dropped"]
        summary.skipped = counters["skipped"]
        summary.converted = counters["converted"]
        summary.nonfinite_values = counters["nonfinite_values"]
        summary.captions = captions
        if errors and sys.exc_info()[0] is None:
            raise errors[0]
    if summary.frames_written == 0 and source.skipped and not summary.interrupted:
        first = source.skipped[0]
        raise InputError(f"No frame could be used: {len(source.skipped)} input(s) skipped, e.g. {first['item']} "
                         f"({first['reason']}).")
    return summary


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _opt(default: Any, help: str, *flags: str, **typer: Any) -> Any:
    """A field of :class:`RunOptions` with its command-line flags and help text."""
    return field(default=default, metadata={"help": help, "flags": flags, "typer": typer})


BACKEND_HELP = "auto | trt | ort-trt | ort-cuda | ort-cpu | torch (auto picks the fastest available and says why)."
DEVICE_HELP = "auto | cpu | GPU index N (or cuda:N): where GPU backends run (auto: GPU 0 when there is one)."


@dataclass
class RunOptions:
    """The ``run`` command's options; the CLI's parameters are built from these fields."""

    bundle: Path = _opt(Path("bundle"), "Bundle folder written by `tr2m-edge export` (env TR2M_EDGE_BUNDLE).",
                        "--bundle", "-b", envvar="TR2M_EDGE_BUNDLE")
    camera: int | None = _opt(None, "Camera index (OpenCV), e.g. 0.")
    camera_size: str | None = _opt(None, "With --camera: requested frame size WIDTHxHEIGHT, e.g. 1280x720 (the camera "
                                         "picks its nearest mode; a different one is reported).")
    camera_fps: float | None = _opt(None, "With --camera: requested frame rate, e.g. 30.", min=0.1)
    video: Path | None = _opt(None, "Video file to read to the end.")
    images: str | None = _opt(None, "Image folder or glob, e.g. 'frames/*.png'.")
    rtsp: str | None = _opt(None, "Network stream URL (rtsp://, http://).")
    source: str | None = _opt(None, "GStreamer pipeline ending in appsink (CSI cameras on a Jetson), e.g. "
                                    "'nvarguscamerasrc ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! "
                                    "video/x-raw,format=BGR ! appsink'; needs an OpenCV built with GStreamer.")
    synthetic: bool = _opt(False, "Stream procedural synthetic scenes (no camera needed).")
    text: str | None = _opt(None, "Scene caption, or the name of a cached scene.", "--text", "-t")
    scene_file: Path | None = _opt(None, "Text file whose first line is the caption; edits apply while running.")
    scene_stdin: bool = _opt(False, "Read new captions from stdin, one per line.")
    no_cache: bool = _opt(False, "Keep new captions' scene biases in memory only (default: stored in "
                                 "$XDG_CACHE_HOME/tr2m-edge/scenes/, never in the bundle).")
    backend: str = _opt("auto", BACKEND_HELP)
    device: str = _opt("auto", DEVICE_HELP)
    precision: str = _opt("auto", "auto | fp32 | fp16 | int8 (auto: fp16 on GPUs, fp32 on CPUs).")
    checkpoint: Path | None = _opt(None, "Head checkpoint (best.pt) for --backend torch.")
    mode: str = _opt("auto", "auto | latency | throughput | serial (auto: latency for cameras/streams, "
                             "throughput for files).")
    show: bool = _opt(False, "Show a live window: frame | metric depth | colour bar in metres, with FPS and caption "
                             "(needs a display and OpenCV with windows: the gui extra). Keys: q quit, n next cached "
                             "scene, t type a new caption (Enter applies it, Esc cancels).")
    window_size: str = _opt("1280x720", "With --show: the most the window may take, WIDTHxHEIGHT; the panel is "
                                        "scaled to fit (up or down, aspect kept).")
    out: Path | None = _opt(None, "Write RGB | depth side by side to this video (.mp4/.avi).", "--out", "-o")
    save_depth: Path | None = _opt(None, "Folder for 16-bit PNG depth (millimetres unless --png-scale) and frames.jsonl.")
    save_npy: bool = _opt(False, "With --save-depth: also write float32 .npy depth in metres.")
    png_scale: float = _opt(1000.0, "With --save-depth: PNG units per metre (1000 = millimetres, up to 65.5 m; "
                                    "100 = centimetres, up to 655 m); recorded in frames.jsonl.")
    stats: bool = _opt(False, "Print FPS, per-stage ms and drops every second.")
    frames: int | None = _opt(None, "Stop after this many frames.", "--frames", "-n", min=1)
    fps: float = _opt(0.0, "Frame rate of --out (default: the source's, else 30).")
    threads: int | None = _opt(None, "CPU threads for ONNX Runtime (default: all cores).", min=1)
    queue_size: int = _opt(2, "Frames each pipeline queue holds (throughput mode).", min=1)
    plan: str = _opt("auto", PLAN_HELP)
    fp16: bool | None = _opt(None, "Torch backend on CUDA: half precision on or off (default: each component's "
                                   "dtype, channels-last, compile and CUDA-graph settings measured on the GPU at "
                                   "start, the fastest that agrees with fp32 kept).", "--fp16/--no-fp16")
    cuda_graphs: bool | None = _opt(None, "Torch backend on CUDA: replay captured CUDA graphs on or off (default: "
                                          "measured, as for --fp16).", "--cuda-graphs/--no-cuda-graphs")
    seed: int = _opt(0, "Seed of --synthetic scenes.")
    depth_range: str | None = _opt(None, "Colour range of --show and --out in metres: MIN:MAX (e.g. 0.5:10; MIN,MAX "
                                         "too), 'bundle' (the model's depth range) or 'auto' (default: the range of "
                                         "the first second of frames, then fixed).", "--range", "--depth-range")
    log_colours: bool = _opt(False, "Space the depth colours by log-depth (for ranges over decades).")
    relative: bool = _opt(False, "With --out: add the relative depth D_r (RGB | relative | metric).")
    panel_scale: int = _opt(1, "With --out: enlarge the panel by this factor (readable labels on small frames).",
                            min=1)


class _Late:
    """Holds the pipeline for callbacks created before it exists (window keys, stats)."""

    pipeline: DepthPipeline | None = None

    def stop(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()

    def counters(self) -> dict[str, int]:
        p = self.pipeline
        return p.executor.counters.as_dict() if p is not None and p.executor is not None else {}

    def next_scene(self) -> None:
        p = self.pipeline
        if p is None or not p.cached_captions:
            return
        names = list(p.cached_captions)
        current = next((n for n, c in p.cached_captions.items() if c == p.caption), None)
        nxt = names[(names.index(current) + 1) % len(names)] if current in names else names[0]
        p.set_scene(nxt)

    def set_scene(self, text: str) -> None:
        if self.pipeline is not None:
            self.pipeline.set_scene(text)


def _initial_caption(opts: RunOptions) -> str | None:
    if opts.text is not None:
        if not opts.text.strip():
            raise InputError("--text is empty; describe the scene, e.g. --text 'warehouse aisle' (or leave --text out "
                             "to use the bundle's first cached caption).")
        return opts.text
    if opts.scene_file is not None:
        if not opts.scene_file.is_file():
            raise InputError(f"--scene-file {opts.scene_file} does not exist; create it with the caption on its first line.")
        for line in opts.scene_file.read_text(errors="replace").splitlines():
            if line.strip():
                return line.strip()
    return None


def parse_depth_range(text: str) -> tuple[float, float]:
    """'MIN:MAX' (or 'MIN,MAX') metres -> (min, max) with 0 <= min < max; InputError otherwise."""
    try:
        lo, hi = (float(v) for v in text.replace(":", ",").split(","))
    except ValueError:
        raise InputError(f"--range/--depth-range must look like MIN,MAX in metres (or MIN:MAX, e.g. 0.5:10), "
                         f"or auto or bundle; got '{text}'.") from None
    if not (0 <= lo < hi < float("inf")):
        raise InputError(f"--range/--depth-range needs 0 <= MIN < MAX; got {lo:g},{hi:g}.")
    return lo, hi


def _colouriser(opts: RunOptions, model_range: tuple[float, float] | None = None) -> DepthColouriser:
    """The colours of --show and --out (one instance, so both show the same range).

    ``--range MIN:MAX`` fixes it; ``bundle``: the model's (min_depth, max_depth); ``auto``
    (default): the range of the first second of frames, then fixed.
    """
    choice = (opts.depth_range or "auto").strip().lower()
    if choice == "auto":
        return SettlingColouriser(1.0, log=opts.log_colours)
    fixed = model_range if choice == "bundle" and model_range else parse_depth_range(opts.depth_range or "")
    if opts.log_colours and fixed[0] <= 0:
        raise InputError(f"--log-colours needs --depth-range with MIN > 0; got {opts.depth_range}.")
    return DepthColouriser(fixed, log=opts.log_colours)


def run_from_options(opts: RunOptions, console: Console | None = None) -> RunSummary:
    """Set everything up from ``opts`` and run until the stream ends, Ctrl-C or ``q``."""
    console = console or Console(stderr=True, highlight=False)
    check_plan(opts.plan)
    bundle = open_bundle(opts.bundle)
    caption = _initial_caption(opts)
    device_id = resolve_device(opts.device)
    cfg = bundle.config
    size = tuple(bundle.manifest.frame_size or cfg.preprocess.input_size)
    late = _Late()
    with ExitStack() as stack:
        sinks: list[Sink] = []
        colours = _colouriser(opts, (cfg.min_depth, cfg.max_depth)) if opts.show or opts.out is not None else None
        if opts.show:
            typed = CaptionWorker(late.set_scene)
            stack.callback(typed.stop)
            sinks.append(DisplaySink(on_stop=late.stop, on_next_scene=late.next_scene, on_caption=typed.submit,
                                     caption_status=lambda: typed.status, colouriser=colours,
                                     window_size=parse_width_height(opts.window_size, "--window-size")))
        if opts.out is not None:
            sinks.append(VideoSink(opts.out, fps=opts.fps or 30.0, colouriser=colours, scale=opts.panel_scale))
        if opts.save_depth is not None:
            sinks.append(DepthFileSink(opts.save_depth, npy=opts.save_npy, png_scale=opts.png_scale))
        elif opts.save_npy:
            raise InputError("--save-npy needs --save-depth DIR (where to write the files).")
        if opts.stats or not sinks:
            sinks.append(StatsSink(late.counters, console=console))
        for sink in sinks:
            stack.callback(sink.close)  # closed again only if run_stream never got them (close is idempotent)
        source = make_source(camera=opts.camera, video=opts.video, images=opts.images, rtsp=opts.rtsp,
                             synthetic=opts.synthetic, synthetic_count=opts.frames, synthetic_size=size, seed=opts.seed,
                             gstreamer=opts.source, camera_fps=opts.camera_fps,
                             camera_size=parse_camera_size(opts.camera_size) if opts.camera_size else None)
        stack.callback(source.close)
        source.open()
        if opts.out is not None and not opts.fps and source.fps:
            for sink in sinks:
                if isinstance(sink, VideoSink):
                    sink.fps = source.fps
        mode = Mode.parse(("latency" if source.live else "throughput") if opts.mode == "auto" else opts.mode)
        pipeline = DepthPipeline.from_bundle(
            bundle, opts.backend, precision=opts.precision, threads=opts.threads,
            split_threads=mode is not Mode.SERIAL, checkpoint=opts.checkpoint, fp16=opts.fp16,
            cuda_graphs=opts.cuda_graphs, verify=False, device_id=device_id, cache_captions=not opts.no_cache,
        )
        stack.callback(pipeline.close)
        late.pipeline = pipeline
        console.print(f"backend [bold]{pipeline.backend.name}[/]: {escape(pipeline.backend.reason)}")
        if pipeline.tuning is not None:
            console.print(escape(f"torch settings (measured on {pipeline.tuning.device}): {pipeline.tuning.describe()}"))
        if caption is None and source.has_captions:
            pipeline.follow_frame_captions()  # each synthetic scene with its own caption
            console.print(escape(f"scene: each frame's own caption; source: {source.name}; mode: {mode.value}"))
        else:
            if caption is None:
                if not pipeline.cached_captions:
                    raise InputError("No scene caption: pass --text 'warehouse aisle' (or --scene-file FILE).")
                caption = next(iter(pipeline.cached_captions))
            pipeline.set_scene(caption)
            console.print(escape(f"scene: '{pipeline.caption}'; source: {source.name}; mode: {mode.value}"))
        watchers: list[Any] = []
        if opts.scene_file is not None:
            watchers.append(CaptionFileWatcher(opts.scene_file, pipeline.set_scene).start())
        if opts.scene_stdin:
            watchers.append(StdinCaptionReader(pipeline.set_scene).start())
        for w in watchers:
            stack.callback(w.stop)
        summary = run_stream(pipeline, source, sinks, mode=mode, max_frames=opts.frames, queue_size=opts.queue_size,
                             maps=opts.relative, plan=opts.plan)
    return summary
