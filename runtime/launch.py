"""Everything ``tr2m-edge run`` sets up, as one library call: bundle, source, sinks, scene
watchers, pipeline; then :func:`~tr2m_edge.runtime.run.run_stream`.

Cheap checks come first (bundle manifest and hashes, sink options, opening the source),
so a wrong camera index or a headless ``--show`` fails in one line before any model loads.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tr2m_edge.bundle import open_bundle
from tr2m_edge.errors import InputError
from tr2m_edge.runtime.executor import Mode
from tr2m_edge.runtime.pipeline import DepthPipeline
from tr2m_edge.runtime.run import RunSummary, run_stream
from tr2m_edge.runtime.scene import FileSceneWatcher, StdinSceneReader
from tr2m_edge.runtime.sinks import DepthFileSink, DisplaySink, Sink, StatsSink, VideoSink
from tr2m_edge.runtime.sources import make_source

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """The ``run`` command's options (see its ``--help``)."""

    bundle: Path = Path("bundle")
    camera: int | None = None
    video: Path | None = None
    images: str | None = None
    rtsp: str | None = None
    synthetic: bool = False
    text: str | None = None
    scene_file: Path | None = None
    scene_stdin: bool = False
    backend: str = "auto"
    precision: str = "auto"
    checkpoint: Path | None = None
    mode: str = "auto"
    show: bool = False
    out: Path | None = None
    save_depth: Path | None = None
    save_npy: bool = False
    stats: bool = False
    frames: int | None = None
    fps: float = 0.0
    threads: int | None = None
    queue_size: int = 2
    fp16: bool = False
    cuda_graphs: bool = False
    seed: int = 0


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
        if p is None or not p.scene_names:
            return
        names = list(p.scene_names)
        current = next((n for n, c in p.scene_names.items() if c == p.caption), None)
        nxt = names[(names.index(current) + 1) % len(names)] if current in names else names[0]
        p.set_scene(nxt)


def _initial_caption(opts: RunOptions) -> str | None:
    if opts.text:
        return opts.text
    if opts.scene_file is not None:
        if not opts.scene_file.is_file():
            raise InputError(f"--scene-file {opts.scene_file} does not exist; create it with the caption on its first line.")
        for line in opts.scene_file.read_text(errors="replace").splitlines():
            if line.strip():
                return line.strip()
    return None


def run_from_options(opts: RunOptions, console: Console | None = None) -> RunSummary:
    """Set everything up from ``opts`` and run until the stream ends, Ctrl-C or ``q``."""
    console = console or Console(stderr=True, highlight=False)
    bundle = open_bundle(opts.bundle)
    caption = _initial_caption(opts)
    cfg = bundle.config
    size = tuple(bundle.manifest.frame_size or cfg.preprocess.input_size)
    late = _Late()
    with ExitStack() as stack:
        sinks: list[Sink] = []
        if opts.show:
            sinks.append(DisplaySink(on_stop=late.stop, on_next_scene=late.next_scene))
        if opts.out is not None:
            sinks.append(VideoSink(opts.out, fps=opts.fps or 30.0))
        if opts.save_depth is not None:
            sinks.append(DepthFileSink(opts.save_depth, npy=opts.save_npy))
        elif opts.save_npy:
            raise InputError("--save-npy needs --save-depth DIR (where to write the files).")
        if opts.stats or not sinks:
            sinks.append(StatsSink(late.counters, console=console))
        for sink in sinks:
            stack.callback(sink.close)  # closed again only if run_stream never got them (close is idempotent)
        source = make_source(camera=opts.camera, video=opts.video, images=opts.images, rtsp=opts.rtsp,
                             synthetic=opts.synthetic, synthetic_count=opts.frames, synthetic_size=size, seed=opts.seed)
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
            cuda_graphs=opts.cuda_graphs, verify=False,
        )
        stack.callback(pipeline.close)
        late.pipeline = pipeline
        console.print(f"backend [bold]{pipeline.backend.name}[/]: {pipeline.backend.reason}")
        if caption is None:
            if not pipeline.scene_names:
                raise InputError("No scene caption: pass --text 'warehouse aisle' (or --scene-file FILE).")
            caption = next(iter(pipeline.scene_names))
        pipeline.set_scene(caption)
        console.print(f"scene: '{pipeline.caption}'; source: {source.name}; mode: {mode.value}")
        watchers: list[Any] = []
        if opts.scene_file is not None:
            watchers.append(FileSceneWatcher(opts.scene_file, pipeline.set_scene).start())
        if opts.scene_stdin:
            watchers.append(StdinSceneReader(pipeline.set_scene).start())
        for w in watchers:
            stack.callback(w.stop)
        summary = run_stream(pipeline, source, sinks, mode=mode, max_frames=opts.frames, queue_size=opts.queue_size)
    return summary
