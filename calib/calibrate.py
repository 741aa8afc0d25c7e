"""``calibrate_bundle``: a bundle's fp32 graphs -> a gated INT8 variant written into the bundle.

Steps (each shown by the progress display): sample disjoint calibration and held-out
frames (:mod:`.frames`); run the calibration frames through the bundle's fp32 graphs and
record every component's feeds (:mod:`.data`); quantise the depth model, the image
encoder and the head (:mod:`.quantize`); measure the INT8 pipeline against the fp32 one
on the held-out frames (:mod:`.gate`); write the graphs and the record into the bundle
(:mod:`.variant`), marked unusable when the gate fails; with TensorRT and a GPU present,
build INT8 engines from the Q/DQ graphs and gate them the same way (:mod:`.engines`).

Captions (the head's scene bias): ``texts`` when given, else a frame's own caption
(synthetic scenes), else the bundle's cached captions in turn, else a neutral caption.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tr2m_edge.bundle import Bundle, open_bundle, staging_folder
from tr2m_edge.calib.data import FeedReader, feed_bytes, frame_stages, record_feeds
from tr2m_edge.calib.frames import FrameSets, sample_frames
from tr2m_edge.calib.gate import DEFAULT_MAX_DRIFT, GateReport, run_gate
from tr2m_edge.calib.quantize import DEFAULT_OPS, DEFAULT_OPS_REASON, FALLBACK_OPS, QuantSettings, quantize_graph
from tr2m_edge.calib.variant import INT8_COMPONENTS, install_variant, int8_file, remove_staging
from tr2m_edge.contract import COMPONENTS
from tr2m_edge.errors import BundleError, ConfigError
from tr2m_edge.progress import StepProgress
from tr2m_edge.runtime.pipeline import cpu_threads
from tr2m_edge.runtime.runners.base import Runner, activated
from tr2m_edge.runtime.runners.onnxrt import OrtRunner
from tr2m_edge.runtime.stages import caption_bias
from tr2m_edge.system import package_version

log = logging.getLogger(__name__)
NEUTRAL_CAPTION = "a photo of a scene"


@dataclass
class CalibrationResult:
    """What a calibration run wrote and measured."""

    bundle: Path
    files: list[str]
    gate: GateReport
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.gate.usable


def check_components(bundle: Bundle, components: Sequence[str] | None) -> list[str]:
    """The components to quantise (default: every per-frame graph the bundle has), each with an fp32 graph.

    Raises:
        BundleError: the bundle lacks an fp32 ONNX graph calibration needs.
        ConfigError: an unknown component name.
    """
    have = {f.component for f in bundle.manifest.files if f.precision == "fp32" and f.format == "onnx"}
    needed = [c for c in COMPONENTS if c != "image_encoder" or not bundle.config.shared_backbone]
    missing = [c for c in needed if c not in have]
    if missing:
        raise BundleError(f"Bundle {bundle.root} has no fp32 ONNX graph for {', '.join(missing)}: INT8 calibration "
                          "starts from the fp32 graphs. Re-export it with `tr2m-edge export`.")
    chosen = list(components) if components else [c for c in INT8_COMPONENTS if c in have]
    bad = [c for c in chosen if c not in INT8_COMPONENTS or c not in have]
    if bad or not chosen:
        options = ", ".join(c for c in INT8_COMPONENTS if c in have)
        raise ConfigError(f"Cannot calibrate component(s) {bad or 'none'} of this bundle. Available: {options}.")
    return chosen


def fp32_runners(bundle: Bundle, threads: int) -> dict[str, Runner]:
    """ONNX Runtime CPU runners over the bundle's six fp32 graphs (not activated)."""
    return {c: OrtRunner(bundle.path(e), providers=("cpu",), intra_op_threads=threads if c != "preprocess" else 1,
                         name=f"{c}-fp32")
            for c in COMPONENTS if (e := bundle.manifest.find(c, "fp32")) is not None}


def frame_captions(bundle: Bundle, sets: FrameSets, texts: Sequence[str]) -> tuple[list[str], list[str], str]:
    """Per calibration and per held-out frame, the caption its scene bias comes from; and where they came from."""
    cal, held = sets.calibration_captions, sets.held_out_captions
    if texts:
        pool, origin = [t.strip() for t in texts if t.strip()], "--text"
        if not pool:
            raise ConfigError("--text is empty; give a scene caption such as 'warehouse aisle'.")
    elif all(cal) and all(held):
        return list(cal), list(held), "each frame's own caption (synthetic scenes)"  # type: ignore[arg-type]
    else:
        try:
            from tr2m_edge.caption_cache import CaptionCache

            pool = sorted(set(CaptionCache(bundle).names().values()))
        except BundleError:
            pool = []
        origin = "the bundle's cached captions" if pool else "a neutral caption"
        pool = pool or [NEUTRAL_CAPTION]
    return ([pool[i % len(pool)] for i in range(len(cal))], [pool[i % len(pool)] for i in range(len(held))], origin)


def calibrate_bundle(
    bundle: str | Path | Bundle, *, images: str | Path | None = None, video: str | Path | None = None,
    synthetic: bool = False, num: int = 32, holdout: int = 8, method: str = "minmax",
    ops: Sequence[str] | None = None, max_drift: float = DEFAULT_MAX_DRIFT, seed: int = 0,
    texts: Sequence[str] = (), components: Sequence[str] | None = None, threads: int | None = None,
    trt: bool | None = False, progress: bool = True,
) -> CalibrationResult:
    """Calibrate, quantise, gate and write the INT8 variant of ``bundle``.

    Args:
        bundle: the bundle folder (or an opened Bundle); it is modified in place.
        images / video / synthetic: the frame source (exactly one).
        num / holdout: calibration and held-out frames; seed: their sampling seed.
        method: ``minmax``, ``entropy`` or ``percentile``.
        ops: op types to quantise. None: the measured :data:`DEFAULT_OPS`, and when they fail
            the gate, :data:`FALLBACK_OPS` (re-quantised with the same ranges, gated again);
            every attempt is recorded (``attempts``).
        max_drift: the gate's AbsRel limit of INT8 against fp32 metric depth.
        texts: captions for the head's scene bias (default: see the module docstring).
        components: graphs to quantise (default: depth, image encoder (if any) and head).
        threads: CPU threads for ONNX Runtime (default: all cores).
        trt: also build INT8 TensorRT engines (None: when TensorRT and a GPU are present).
        progress: show the progress display on stderr.

    Returns:
        The result; ``result.usable`` is False when the gate failed (the variant is then
        recorded as unusable and ``run``/``bench --precision int8`` refuse it).

    Raises:
        Tr2mError subclasses, one line each: bad options, a frame source without usable
        frames, a bundle without fp32 graphs, a failed quantisation.
    """
    if not 0 < max_drift < 1:
        raise ConfigError(f"--max-drift is an AbsRel between 0 and 1 (0.02 = 2 %); got {max_drift}.")
    settings = QuantSettings(ops=tuple(ops) if ops else DEFAULT_OPS, method=method)
    bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
    chosen = check_components(bundle, components)
    build_engines = _engine_plan(bundle, trt)
    threads = threads or cpu_threads()
    cfg, frame_size = bundle.config, bundle.manifest.frame_size
    staging = None
    steps_total = 5 + len(chosen) + (1 if build_engines else 0)
    with StepProgress(steps_total, progress, "calibrate") as steps:
        try:
            with steps.step(f"sample {num} calibration + {holdout} held-out frames"):
                sets = sample_frames(images=images, video=video, synthetic=synthetic, num=num, holdout=holdout,
                                     seed=seed, frame_size=frame_size, input_size=cfg.preprocess.input_size)
                cal_captions, held_captions, caption_origin = frame_captions(bundle, sets, texts)
            staging = staging_folder(bundle, ".calib-", "calib writes the INT8 graphs into it")
            with steps.step("load the fp32 graphs (ONNX Runtime CPU)"):
                reference = fp32_runners(bundle, threads)
                tokenizer = bundle_tokenizer(bundle)
            with activated(reference) as ref:
                with steps.step(f"record calibration feeds ({len(sets.calibration)} frames)"):
                    bias_of = caption_biases(ref, tokenizer, cal_captions + held_captions)
                    feeds = record_feeds(frame_stages(ref, cfg, frame_size, "fp32 calibration"), sets.calibration,
                                         [bias_of[c] for c in cal_captions], chosen)
                    log.info("recorded %.0f MiB of calibration feeds", feed_bytes(feeds) / 2**20)
                def gate(int8_runners: dict[str, Runner]) -> GateReport:
                    with activated(int8_runners):
                        return run_gate(ref, {**ref, **int8_runners}, cfg, sets.held_out,
                                        [tokenizer([c]) for c in held_captions], [bias_of[c] for c in held_captions],
                                        frame_size, list(int8_runners), max_drift=max_drift)

                # without --ops: the measured fastest op types first, then the accurate fallback when they
                # fail the gate (its tensors are a subset: the first attempt's ranges serve it)
                ladder = [settings] if ops else [settings, dataclasses.replace(settings, ops=FALLBACK_OPS)]
                attempts: list[dict[str, Any]] = []
                for i, attempt in enumerate(ladder):
                    last = i == len(ladder) - 1
                    if i:
                        steps.set_total(steps_total + i * (len(chosen) + 1))
                        log.warning("INT8 with %s fails the gate (metric depth AbsRel %.3f%% > %.2f%%); trying %s",
                                    "/".join(ladder[i - 1].ops), 100 * attempts[-1]["abs_rel"], 100 * max_drift,
                                    "/".join(attempt.ops))
                    stats: dict[str, Any] = {}
                    for comp in chosen:
                        with steps.step(f"quantise {comp} ({attempt.method}, {'/'.join(attempt.ops)})"):
                            reader = FeedReader(comp, feeds[comp] if build_engines or not last else feeds.pop(comp))
                            stats[comp] = quantize_graph(bundle.path(bundle.require(comp, "fp32")),
                                                         staging / int8_file(comp), reader, attempt, workdir=staging,
                                                         ranges=staging / f"{comp}.ranges.json")
                    with steps.step(f"accuracy gate on {len(sets.held_out)} held-out frames"):
                        report = gate({c: OrtRunner(staging / int8_file(c), providers=("cpu",),
                                                    intra_op_threads=threads, name=f"{c}-int8") for c in chosen})
                    attempts.append({"ops": list(attempt.ops), "abs_rel": report.abs_rel, "usable": report.usable})
                    settings = attempt
                    if report.usable:
                        break
                record = _record(settings, ops, sets, caption_origin, cal_captions, stats, report, chosen, attempts)
                staged = {(c, "onnx"): staging / int8_file(c) for c in chosen}
                tensorrt_info = None
                if build_engines:
                    from tr2m_edge.calib.engines import build_int8_engines

                    with steps.step("build INT8 TensorRT engines from symmetric Q/DQ graphs"):
                        trt_settings = dataclasses.replace(settings, symmetric=True)
                        tensorrt_info, engines = build_int8_engines(  # the same ranges, symmetric Q/DQ
                            bundle, staging, chosen, trt_settings,
                            lambda comp, dst: quantize_graph(bundle.path(bundle.require(comp, "fp32")), dst,
                                                             FeedReader(comp, feeds[comp]), trt_settings, workdir=staging,
                                                             ranges=staging / f"{comp}.ranges.json"),
                            gate)
                        staged.update({(c, "engine"): path for c, path in engines.items()})
            with steps.step(f"write {len(staged)} INT8 file(s) into {bundle.root}"):
                install_variant(bundle, staged, record, tensorrt=tensorrt_info)
        finally:
            remove_staging(staging)
    return CalibrationResult(bundle=bundle.root, files=[int8_file(c, f) for c, f in sorted(staged)], gate=report,
                             record=record)


def _engine_plan(bundle: Bundle, trt: bool | None) -> bool:
    if trt is False:
        return False
    from tr2m_edge.system import engine_target

    here = engine_target()
    if here is None and trt:
        raise ConfigError("--trt needs TensorRT and a CUDA GPU on this machine; neither was found. Use --no-trt: the "
                          "INT8 ONNX graphs run on ONNX Runtime, and engines can be built later on the target.")
    return here is not None


def bundle_tokenizer(bundle: Bundle) -> Any:
    from tr2m_edge.runtime.scene_bias import SceneBiasRunner

    return SceneBiasRunner(bundle).tokenizer


def caption_biases(runners: dict[str, Runner], tokenizer: Any, captions: Sequence[str]) -> dict[str, np.ndarray]:
    """Caption -> its fp32 (1, C) scene bias, each distinct caption computed once."""
    return {c: np.asarray(caption_bias(runners, tokenizer([c])), dtype=np.float32) for c in dict.fromkeys(captions)}


def _record(settings: QuantSettings, ops: Sequence[str] | None, sets: FrameSets, caption_origin: str,
            captions: Sequence[str], stats: dict[str, Any], gate: GateReport, chosen: Sequence[str],
            attempts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if ops:
        reason = "requested with --ops"
    elif len(attempts) > 1:
        reason = (f"{'/'.join(DEFAULT_OPS)} (the measured default) failed the gate here (metric depth AbsRel "
                  f"{attempts[0]['abs_rel']:.3%}), so the accurate fallback {'/'.join(FALLBACK_OPS)} was tried. "
                  f"Default: {DEFAULT_OPS_REASON}")
    else:
        reason = DEFAULT_OPS_REASON
    return {
        "usable": gate.usable,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "components": list(chosen),
        "quantization": settings.describe(),
        "ops_reason": reason,
        "attempts": list(attempts),
        "frames": sets.describe(),
        "captions": {"from": caption_origin, "distinct": sorted(set(captions))[:16]},
        "graphs": stats,
        "gate": gate.to_dict(),
        "tools": {"onnxruntime": package_version("onnxruntime"), "onnx": package_version("onnx")},
    }
