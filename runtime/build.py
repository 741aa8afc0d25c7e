"""``tr2m-edge build``: TensorRT engines from a bundle's ONNX graphs, on the device that runs them.

TensorRT alone: no PyTorch and not even the ``onnx`` package (an engine's inputs and
outputs are those of the graph it is built from, as the manifest lists them), so engines
are built on the Jetson or GPU server itself from a bundle exported anywhere. The builder
is :func:`tr2m_edge.runtime.engines.build_engine`; :func:`write_engines` is the one path
that writes engine files (``build`` and ``export --trt`` both use it).

:func:`build_bundle` steps:

1. open the bundle and verify every sha256; refuse what cannot be built (INT8, see below);
2. TensorRT and the GPU (``--device N``): their fingerprint
   (:func:`tr2m_edge.system.engine_target`) is what the engines are for;
3. build the per-frame engines (depth, image encoder, head; the head only with a fixed
   frame size) into a hidden staging folder inside the bundle;
4. parity: the bundle's fp32 graphs on ONNX Runtime's CPU provider are the reference, the
   engines (plus ONNX Runtime for the other components) the candidates, on the bundle's own
   check inputs (``check.npz``: the frame and caption export checked its graphs on, so the
   engines are compared on the very input the graphs were verified on; bundles exported
   before it have a synthetic scene, seed 1, and the export caption instead); the
   comparator is the runtime's (:mod:`tr2m_edge.runtime.comparator`), tolerances
   :data:`tr2m_edge.parity.TOLERANCES`. Engines beyond tolerance are not installed;
5. install, keeping the bundle valid at every point: the manifest is first rewritten
   without the engines being replaced, then the new engines are moved in, then the
   manifest lists them (sha256, precision, I/O), the ``tensorrt`` fingerprint and the
   parity report (``parity["tensorrt-<precision>"]``).

Engines of another precision built for the same GPU and TensorRT stay; engines built for
another target are removed (they could not run here anyway). INT8 engines need symmetric
Q/DQ graphs and an accuracy gate over calibration frames: ``tr2m-edge calib`` builds them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tr2m_edge.bundle import CHECK_CAPTION, Bundle, ComponentFile, Manifest, open_bundle, read_check_inputs
from tr2m_edge.bundle import sha256_file, write_manifest
from tr2m_edge.config import ModelConfig
from tr2m_edge.contract import COMPONENTS
from tr2m_edge.errors import BackendError, BundleError, ConfigError, OutputError
from tr2m_edge.parity import ParityReport
from tr2m_edge.progress import StepProgress
from tr2m_edge.runtime.engines import ENGINE_COMPONENTS, build_engine, engine_profile
from tr2m_edge.runtime.runners.base import Runner
from tr2m_edge.system import EngineTarget, engine_target, import_tensorrt

if TYPE_CHECKING:
    from tr2m_edge.runtime.comparator import Reference

log = logging.getLogger(__name__)
ENGINE_PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_WORKSPACE_MB = 4096
ExtraCheck = Callable[[Mapping[str, Runner]], ParityReport]  # activated candidates -> a report that must pass


def engine_file(component: str, precision: str) -> str:
    """The bundle-relative name of an engine: ``depth.fp16.engine``."""
    return f"{component}.{precision}.engine"


def engine_components(components: Iterable[str], frame_size: tuple[int, int] | None) -> list[str]:
    """The components of a graph set that get engines: the per-frame ones; the head only with a
    fixed frame size (its ``frame_hw`` shape input cannot go into an engine)."""
    have = set(components)
    return [c for c in ENGINE_COMPONENTS if c in have and not (c == "head" and frame_size is None)]


def engine_sources(files: Sequence[ComponentFile], frame_size: tuple[int, int] | None
                   ) -> tuple[dict[str, ComponentFile], dict[str, str]]:
    """The fp32 graphs engines are built from (component -> entry), and the components skipped (with why)."""
    graphs = {f.component: f for f in files if f.precision == "fp32" and f.format == "onnx"}
    sources = {c: graphs[c] for c in engine_components(graphs, frame_size)}
    skipped = {"head": "dynamic frame size (frame_hw shape input): export with --frame-size for a head engine"} \
        if "head" in graphs and "head" not in sources else {}
    return sources, skipped


def _find(files: Sequence[ComponentFile], component: str, precision: str, fmt: str) -> ComponentFile | None:
    return next((f for f in files if f.component == component and f.precision == precision and f.format == fmt), None)


@dataclass
class EngineSet:
    """Engines written into a folder: their files, manifest entries and build facts."""

    precision: str
    paths: dict[str, Path] = field(default_factory=dict)  # component -> engine file as written
    entries: list[ComponentFile] = field(default_factory=list)  # as they will be listed (file = engine_file(...))
    facts: dict[str, Any] = field(default_factory=dict)  # component -> build facts (source, typing, flags)
    skipped: dict[str, str] = field(default_factory=dict)


def write_engines(root: Path, files: Sequence[ComponentFile], out_dir: Path, cfg: ModelConfig, *, precision: str,
                  dynamic: bool, frame_size: tuple[int, int] | None, workspace_mb: float = DEFAULT_WORKSPACE_MB,
                  steps: StepProgress | None = None) -> EngineSet:
    """Build the per-frame engines of a bundle's graphs: the one path that writes engine files.

    Args:
        root: the folder the entries of ``files`` are relative to.
        files: the bundle's entries (fp32 ONNX graphs; fp16 ones for fp16 on TensorRT 11+).
        out_dir: where the engines are written (``engine_file`` names).
        cfg: the model config (input size of dynamic profiles).
        precision: ``fp32`` or ``fp16``.
        dynamic: the graphs have symbolic sizes (an optimisation profile is built).
        frame_size: the bundle's fixed frame size (None: no head engine).
        workspace_mb: TensorRT builder workspace limit.
        steps: progress display, one step per engine.
    """
    if precision not in ("fp32", "fp16"):
        raise ConfigError(f"write_engines builds fp32 or fp16 engines; got {precision!r}.")
    sources, skipped = engine_sources(files, frame_size)
    built = EngineSet(precision, skipped=skipped)
    for comp, src in sources.items():
        rel = engine_file(comp, precision)
        fp16_src = _find(files, comp, "fp16", "onnx")
        profile = engine_profile({t.name: t.shape for t in src.inputs}, cfg.preprocess.input_size) if dynamic else None
        with steps.step(f"build the {comp} engine") if steps else contextlib.nullcontext():
            built.facts[comp] = build_engine(root / src.file, out_dir / rel, fp16=precision == "fp16",
                                             fp16_onnx_path=root / fp16_src.file if fp16_src else None,
                                             profile=profile, workspace_gb=workspace_mb / 1024)
        built.paths[comp] = out_dir / rel
        built.entries.append(ComponentFile(component=comp, file=rel, sha256=sha256_file(out_dir / rel),
                                           precision=precision, format="engine", inputs=src.inputs,
                                           outputs=src.outputs))
    return built


@dataclass
class BuildResult:
    """What :func:`build_bundle` did."""

    bundle: Path
    target: EngineTarget
    precision: str
    engines: list[str]  # installed engine files
    skipped: dict[str, str]
    parity: dict[str, Any]  # the parity report (ParityReport.to_dict), vs the bundle's fp32 graphs
    removed: list[str]  # engine files of another GPU / TensorRT that were removed
    seconds: float
    check_inputs: str  # where the parity frame came from

    def describe(self) -> str:
        skipped = "".join(f"; no {c} engine: {why}" for c, why in self.skipped.items())
        depth = self.parity["depth"]["abs_rel"]
        return (f"Built {len(self.engines)} {self.precision} engine(s) for {self.target.describe()} in "
                f"{self.seconds:.0f} s ({', '.join(self.engines)}); parity vs the fp32 ONNX graphs on {self.check_inputs}: "
                f"metric depth AbsRel {depth:.2e}, passed{skipped}.")


def build_step_count(components: Iterable[str], frame_size: tuple[int, int] | None) -> int:
    """How many progress steps :func:`build_bundle` shows for a graph set (an export adds them to its own)."""
    return len(engine_components(components, frame_size)) + 2


def build_bundle(path: str | Path | Bundle, *, precision: str = "fp16", workspace_mb: float = DEFAULT_WORKSPACE_MB,
                 device_id: int = 0, progress: bool = True, steps: StepProgress | None = None,
                 extra_checks: Mapping[str, ExtraCheck] | None = None) -> BuildResult:
    """Build TensorRT engines for ``path`` on this machine's GPU ``device_id`` and install them.

    Args:
        path: the bundle (written by ``tr2m-edge export``; it must be writable).
        precision: ``fp16`` (default) or ``fp32``; ``int8`` is refused (``tr2m-edge calib`` builds INT8 engines).
        workspace_mb: TensorRT builder workspace limit.
        device_id: the CUDA device to build for (and check on).
        progress: show a progress display (ignored when ``steps`` is given).
        steps: an enclosing progress display to add the steps to (``export --trt``).
        extra_checks: more parity checks of the candidates (``export``: against PyTorch),
            key -> check; each must pass, and is recorded under ``parity[key]``.

    Raises:
        BackendError: no TensorRT or GPU here, a build failure, or engines beyond tolerance.
        BundleError: a missing / tampered bundle file; ConfigError: an unknown precision;
        OutputError: the bundle is not writable.
    """
    start = time.perf_counter()
    if precision not in ENGINE_PRECISIONS:
        raise ConfigError(f"Unknown engine precision '{precision}'. Available: fp32, fp16 (INT8: tr2m-edge calib).")
    bundle = path if isinstance(path, Bundle) else open_bundle(path)
    if precision == "int8":
        raise BundleError("INT8 engines are built by `tr2m-edge calib BUNDLE --images DIR` on the target: they need "
                          "symmetric Q/DQ graphs made from calibration frames and must pass its accuracy gate. "
                          "`tr2m-edge build` makes fp16 (default) or fp32 engines.")
    sources, _ = engine_sources(bundle.manifest.files, bundle.manifest.frame_size)
    if not sources:
        raise BundleError(f"Bundle {bundle.root} has no fp32 depth / image encoder / head graph to build engines from.")
    try:
        import_tensorrt("or run the bundle's ONNX files instead (--backend ort-cuda / ort-cpu)")
    except BackendError as exc:
        raise BackendError(f"tr2m-edge build needs TensorRT and a CUDA GPU. {exc}") from None
    target = engine_target(device_id)
    if target is None:
        from tr2m_edge.system import cuda_device_count

        count = cuda_device_count()
        where = (f"there is no GPU {device_id} (this machine has {count})" if count else
                 "no CUDA GPU is visible through cuda-python (pip install 'tr2m-edge[gpu]'; check nvidia-smi)")
        raise BackendError(f"tr2m-edge build makes engines for a CUDA GPU, and {where}.")
    staging = _staging_folder(bundle)
    try:
        _set_device(device_id)
        own = steps is None
        steps = steps or StepProgress(len(sources) + 2, progress, "build")
        with steps if own else contextlib.nullcontext():
            engines = write_engines(bundle.root, bundle.manifest.files, staging, bundle.config, precision=precision,
                                    dynamic=bundle.manifest.dynamic, frame_size=bundle.manifest.frame_size,
                                    workspace_mb=workspace_mb, steps=steps)
            with steps.step(f"{precision} engine parity vs the fp32 ONNX graphs (ONNX Runtime CPU)"):
                frame, ids, origin = check_inputs(bundle)
                reports = engine_parity(bundle, engines, frame, ids, target, device_id, extra_checks or {})
            with steps.step(f"install the engines into {bundle.root}"):
                removed = install_engines(bundle, engines, target, workspace_mb, reports)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    own_report = reports[f"tensorrt-{precision}"]
    return BuildResult(bundle=bundle.root, target=target, precision=precision,
                       engines=[e.file for e in engines.entries], skipped=engines.skipped, parity=own_report,
                       removed=removed, seconds=time.perf_counter() - start, check_inputs=origin)


def _staging_folder(bundle: Bundle) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=".build-", dir=bundle.root))
    except OSError as exc:
        raise OutputError(f"Cannot write into the bundle {bundle.root} ({exc.strerror or exc}): build installs the "
                          "engines in it. Copy the bundle to a writable folder and build there.") from None


def _set_device(device_id: int) -> None:
    """Make ``device_id`` the current CUDA device: TensorRT's builder builds for the current one."""
    from tr2m_edge.runtime.runners import cuda

    cuda.check(cuda._cudart().cudaSetDevice(device_id), f"cudaSetDevice({device_id})")


def check_inputs(bundle: Bundle) -> tuple[np.ndarray, np.ndarray, str]:
    """The parity frame (H, W, 3) uint8 and caption token ids (1, 77) int64 of a bundle, and their origin.

    ``check.npz`` when the bundle has it (the inputs export checked its graphs on); else a
    synthetic scene (seed 1) at the bundle's frame size and the export caption, tokenized
    by the bundle's own vocabulary.
    """
    stored = read_check_inputs(bundle)
    if stored is not None:
        frame, ids, caption = stored
        return frame, ids, f"check.npz ('{caption}')"
    from tr2m_edge.synthetic import render_scene
    from tr2m_edge.tokenizer import ClipTokenizer

    size = tuple(bundle.manifest.frame_size or bundle.config.preprocess.input_size)
    vocab = bundle.manifest.tokenizer.get("file")
    tokenizer = ClipTokenizer(bundle.root / str(vocab)) if vocab else ClipTokenizer()
    frame = render_scene(1, size=size).rgb  # type: ignore[arg-type]
    return frame, tokenizer([CHECK_CAPTION]), f"synthetic scene 1 ('{CHECK_CAPTION}'; the bundle has no check.npz)"


def _onnx_runners(bundle: Bundle, components: Sequence[str]) -> dict[str, Runner]:
    from tr2m_edge.runtime.runners.onnxrt import OrtRunner

    return {c: OrtRunner(bundle.path(bundle.require(c, "fp32")), providers=("cpu",), name=f"{c}-fp32")
            for c in components}


def graph_reference(bundle: Bundle, frame: np.ndarray, token_ids: np.ndarray) -> "Reference":
    """The reference engines are checked against: the bundle's fp32 graphs on ONNX Runtime's CPU
    provider, run once through the whole chain on ``frame`` and ``token_ids`` (every feed and output kept)."""
    from tr2m_edge.runtime.comparator import record_reference
    from tr2m_edge.runtime.runners.base import activated

    comps = [c for c in COMPONENTS if bundle.manifest.find(c, "fp32", "onnx") is not None]
    with activated(_onnx_runners(bundle, comps)) as reference:
        return record_reference(reference, bundle.config, frame, token_ids, label="the fp32 ONNX graphs")


def engine_parity(bundle: Bundle, engines: EngineSet, frame: np.ndarray, token_ids: np.ndarray, target: EngineTarget,
                  device_id: int, extra_checks: Mapping[str, ExtraCheck]) -> dict[str, dict[str, Any]]:
    """Check staged engines against the bundle's fp32 graphs (and ``extra_checks``); the reports by parity key.

    Raises:
        BackendError: the engines are beyond tolerance (nothing is installed).
    """
    from tr2m_edge.runtime.comparator import check_parity
    from tr2m_edge.runtime.runners.base import activated
    from tr2m_edge.runtime.runners.trt import TrtRunner

    cfg = bundle.config
    ref = graph_reference(bundle, frame, token_ids)
    candidates = {**_onnx_runners(bundle, [c for c in ref.inputs if c not in engines.paths]),
                  **{c: TrtRunner(p, device_id=device_id, name=f"{c}-{engines.precision}-trt")
                     for c, p in engines.paths.items()}}
    backend = f"tensorrt-{target.tensorrt}"
    reports: dict[str, dict[str, Any]] = {}
    with activated(candidates) as active:
        report = check_parity(active, ref, cfg, precision=engines.precision, backend=backend)
        bad = report.failures()
        if bad:
            raise BackendError(f"The {engines.precision} TensorRT engines do not reproduce the bundle's fp32 graphs on "
                               f"{target.describe()}: {'; '.join(bad)}. Nothing was installed; try --fp32, or run the "
                               "ONNX files (--backend ort-cuda).")
        reports[f"tensorrt-{engines.precision}"] = report.to_dict()
        for key, check in extra_checks.items():
            extra = check(active)
            extra.check()
            reports[key] = extra.to_dict()
    return reports


def tensorrt_entry(old: dict[str, Any] | None, target: EngineTarget, engines: EngineSet, workspace_mb: float,
                   precisions: Iterable[str]) -> dict[str, Any]:
    """The manifest's ``tensorrt`` entry after installing ``engines``: the target's fingerprint, the
    precisions of all engines present, per-engine build facts (``old``'s kept: engines that stay)."""
    base = dict(old or {})
    built = {engine_file(c, engines.precision): {**facts, "workspace_mb": workspace_mb}
             for c, facts in engines.facts.items()}
    previous = {k: v for k, v in dict(base.get("engines", {})).items() if k.endswith(".engine") and k not in built}
    return {**base, "version": target.tensorrt, "gpu": target.gpu, "compute_capability": target.compute_capability,
            "precision": ", ".join(sorted(set(precisions))), "engines": {**previous, **built},
            "skipped": engines.skipped, "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _same_target(info: dict[str, Any] | None, target: EngineTarget) -> bool:
    """True when the manifest's engines were built for exactly this GPU and TensorRT version."""
    if not info:
        return False
    cc = info.get("compute_capability")
    cc_text = f"{int(cc[0])}.{int(cc[1])}" if isinstance(cc, (list, tuple)) else str(cc)  # "8.7" or [8, 7]
    return (str(info.get("version")), str(info.get("gpu")), cc_text) == (target.tensorrt, target.gpu,
                                                                          target.compute_capability)


def install_engines(bundle: Bundle, engines: EngineSet, target: EngineTarget, workspace_mb: float,
                    reports: dict[str, dict[str, Any]]) -> list[str]:
    """Move staged engines into the bundle and list them in its manifest; returns the engine files removed.

    The bundle stays valid if the process dies at any point: first a manifest without the
    engines being replaced (and without engines for another target), then the files, then
    the manifest that lists the new engines.
    """
    root, old = bundle.root, bundle.manifest
    keep = _same_target(old.tensorrt, target)
    stale = [f for f in old.files if f.format == "engine" and (f.precision == engines.precision or not keep)]
    removed = [f.file for f in stale if f.file not in {e.file for e in engines.entries}]
    if removed:
        log.info("removing engines that are replaced or were built for another target: %s", ", ".join(removed))
    rest = [f for f in old.files if f not in stale]
    parity = {k: v for k, v in old.parity.items() if keep or not k.startswith("tensorrt")}
    interim = dataclasses.replace(old, files=rest, parity=parity,
                                  tensorrt=old.tensorrt if keep and any(f.format == "engine" for f in rest) else None)
    write_manifest(root, interim)
    for entry in stale:
        (root / entry.file).unlink(missing_ok=True)
    for comp, staged in engines.paths.items():
        os.replace(staged, root / engine_file(comp, engines.precision))
    manifest: Manifest = dataclasses.replace(
        interim, files=rest + engines.entries, parity={**parity, **reports},
        tensorrt=tensorrt_entry(interim.tensorrt, target, engines, workspace_mb,
                                {f.precision for f in rest if f.format == "engine"} | {engines.precision}))
    write_manifest(root, manifest)
    bundle.manifest = manifest
    return removed
