"""The Python API: ``DepthPipeline.from_bundle(path).set_scene(text).infer(frame)``.

One object owns the runners of a bundle (or of a PyTorch model), the current scene bias
and the executor. The CLI's ``run`` and ``bench`` are thin layers over it::

    with DepthPipeline.from_bundle("bundle", backend="auto") as pipe:
        pipe.set_scene("warehouse aisle")
        depth = pipe.infer(rgb)                      # MetricDepth, metres
        for result in pipe.stream(VideoSource("in.mp4")):
            ...

Running a bundle imports no PyTorch unless the torch backend is chosen.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from tr2m_edge.bundle import Bundle, open_bundle
from tr2m_edge.errors import BackendError, BundleError, ConfigError, InputError, OutputError
from tr2m_edge.fileio import user_cache_dir
from tr2m_edge.runtime.backends import ORT_PROVIDERS, BackendChoice, choose_backend
from tr2m_edge.contract import FRAME_COMPONENTS
from tr2m_edge.runtime.executor import Executor, Mode
from tr2m_edge.runtime.frames import Frame, FrameConformer
from tr2m_edge.runtime.results import MetricDepth
from tr2m_edge.runtime.runners.base import Runner
from tr2m_edge.runtime.scene_bias import caption_biases
from tr2m_edge.runtime.sources import ArraySource, FrameSource
from tr2m_edge.runtime.stages import BiasFn, CaptionState, FrameStages

if TYPE_CHECKING:
    from tr2m_edge.checkpoint import Checkpoint
    from tr2m_edge.config import ModelConfig
    from tr2m_edge.model.tr2m import TR2M

log = logging.getLogger(__name__)
PRECISIONS = ("auto", "fp32", "fp16", "int8")


def cpu_threads() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class DepthPipeline:
    """Frames in, metric depth out, on the chosen backend.

    Build it with :meth:`from_bundle` (ONNX Runtime / TensorRT, or PyTorch with a
    checkpoint), :meth:`from_checkpoint` or :meth:`from_model` (PyTorch reference).
    """

    def __init__(self, stages: FrameStages, bias_fn: BiasFn, backend: BackendChoice,
                 bundle: Bundle | None = None, cached_captions: dict[str, str] | None = None,
                 frame_bias_fn: BiasFn | None = None) -> None:
        self.stages = stages
        self.backend = backend
        self.bundle = bundle
        self.config: ModelConfig = stages.config
        self.frame_size = stages.frame_size
        self.caption_state = CaptionState(frame_bias_fn or bias_fn)  # frame captions: follow_frame_captions
        self.cached_captions = dict(cached_captions or {})  # cache entry name -> caption
        self._bias_fn = bias_fn
        self.executor: Executor | None = None
        self.conformer = FrameConformer(self.frame_size)
        self.tuning: Any = None  # torch backend: the TuneReport of measured settings, when tuned
        stages.activate()

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_bundle(
        cls, path: str | Path | Bundle, backend: str = "auto", *, precision: str = "auto",
        threads: int | None = None, split_threads: bool = True, checkpoint: "str | Path | Checkpoint | None" = None,
        device_id: int | None = 0, verify: bool = True, fp16: bool | None = None, cuda_graphs: bool | None = None,
        cache_captions: bool = True,
    ) -> "DepthPipeline":
        """Open a bundle and build its runners on ``backend``.

        Args:
            path: the bundle folder (or an opened Bundle).
            backend: ``auto | trt | ort-trt | ort-cuda | ort-cpu | torch``.
            precision: graph precision (``auto``: fp16 on GPUs when present, fp32 on the CPU).
            threads: CPU threads for ONNX Runtime (default: all cores of this process).
            split_threads: give each concurrent session half the threads (pipelined modes)
                instead of all of them (serial mode).
            checkpoint: head weights for the torch backend (bundles hold no PyTorch weights).
            device_id: the CUDA device of GPU backends (``--device N``); None: the CPU only.
            fp16 / cuda_graphs: torch backend on CUDA only; None (both): on a GPU each
                component's settings are measured and the fastest that agrees with fp32
                is chosen (:mod:`~tr2m_edge.runtime.runners.torch_tuning`), on the CPU fp32
                eager.
            cache_captions: store new captions' biases in the user cache
                (``$XDG_CACHE_HOME/tr2m-edge/scenes/``); False keeps them in memory. Nothing
                is ever written into the bundle.

        Raises:
            BundleError: missing/tampered files, or engines built for another GPU/TensorRT.
            BackendError: the requested backend cannot run here.
        """
        if precision not in PRECISIONS:
            raise ConfigError(f"Unknown precision '{precision}'. Available: {', '.join(PRECISIONS)}.")
        bundle = path if isinstance(path, Bundle) else open_bundle(path, verify=verify)
        choice = choose_backend(backend, bundle.manifest, has_checkpoint=checkpoint is not None, device_id=device_id)
        log.info("backend %s: %s", choice.name, choice.reason)
        if choice.name == "torch":
            if checkpoint is None:
                raise ConfigError("The torch backend needs a checkpoint (--checkpoint best.pt).")
            tune = choice.on_gpu and fp16 is None and cuda_graphs is None
            pipe = cls.from_checkpoint(checkpoint, frame_size=bundle.manifest.frame_size,
                                       device=f"cuda:{device_id}" if choice.on_gpu else "cpu", fp16=bool(fp16),
                                       cuda_graphs=bool(cuda_graphs), expect=bundle.config, tune=tune)
            pipe.backend = choice
            pipe.bundle = bundle
            return pipe
        runners = _bundle_runners(bundle, choice, precision, threads or cpu_threads(), split_threads, device_id or 0)
        stages = FrameStages(runners, bundle.config, bundle.manifest.frame_size, where=str(bundle.root))
        bias_fn, names, frame_fn = _bundle_captions(bundle, cache_captions)
        return cls(stages, bias_fn, choice, bundle=bundle, cached_captions=names, frame_bias_fn=frame_fn)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: "str | Path | Checkpoint", *, frame_size: tuple[int, int] | None = None,
        device: str = "cpu", fp16: bool = False, cuda_graphs: bool = False, expect: "ModelConfig | None" = None,
        tune: bool = False,
    ) -> "DepthPipeline":
        """PyTorch pipeline from a checkpoint: encoders load from the config's sources.

        Encoders without a source are random and rebuilt from their specs' seeds, so they
        equal the encoders baked into a bundle exported from the same checkpoint.
        """
        from tr2m_edge.checkpoint import Checkpoint, load_checkpoint
        from tr2m_edge.model.tr2m import build_model

        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        if expect is not None and ckpt.config.to_dict() != expect.to_dict():
            raise ConfigError(
                f"The checkpoint's model config ('{ckpt.config.name}') differs from the bundle's ('{expect.name}'); "
                "use the checkpoint the bundle was exported from."
            )
        model = build_model(ckpt.config, ckpt.head).eval()
        return cls.from_model(model, frame_size=frame_size, device=device, fp16=fp16, cuda_graphs=cuda_graphs,
                              tune=tune)

    @classmethod
    def from_model(
        cls, model: "TR2M", *, frame_size: tuple[int, int] | None = None, device: str = "cpu",
        fp16: bool = False, cuda_graphs: bool = False, streams: bool = True, tune: bool = False,
    ) -> "DepthPipeline":
        """PyTorch reference over an existing model (its weights are used as they are).

        On CUDA every stage gets its own stream (``streams``), so the depth and image
        encoder stages overlap when pipelined; fp16 and CUDA graphs are CUDA-only options.
        ``tune`` measures each component's settings on ``device`` first (dtype,
        channels-last, compile, CUDA graphs: :func:`~tr2m_edge.runtime.runners.torch_tuning.tune`)
        and runs the fastest that agrees with fp32; the trials are in :attr:`tuning`.
        """
        import torch

        from tr2m_edge.runtime.runners.torch_runner import TorchRunner, torch_components

        on_gpu = device.startswith("cuda")
        model.to(device)
        chosen: dict[str, Any] = {}
        tuning = None
        if tune:
            from tr2m_edge.runtime.runners.torch_tuning import tune as measure_settings

            with torch.no_grad():
                bias = model.scene_bias(model.encode_text(["a room"]).to(device)).float()
            chosen, tuning = measure_settings(model, frame_size, device, bias=bias)
        runners: dict[str, Runner] = {}
        for name, (module, ins, outs) in torch_components(model, frame_size).items():
            settings = chosen[name].runner_kwargs() if name in chosen else {
                "dtype": "fp16" if fp16 and name != "preprocess" else "fp32",
                "cuda_graph": cuda_graphs and frame_size is not None}
            runners[name] = TorchRunner(
                module, ins, outs, device=device, own_stream=on_gpu and streams,
                host_outputs=(name == "head") or not on_gpu, name=f"torch-{name}", **settings,
            )
        stages = FrameStages(runners, model.cfg, frame_size, where="PyTorch model")

        def bias_fn(caption: str) -> np.ndarray:
            with torch.no_grad():
                emb = model.encode_text([caption])
                head_dtype = next(model.head.parameters()).dtype  # fp16 / bf16 once a cast head runner activated
                return model.scene_bias(emb.to(device=device, dtype=head_dtype)).float().cpu().numpy()

        choice = BackendChoice("torch", "PyTorch reference", "cuda" if on_gpu else "cpu")
        pipe = cls(stages, bias_fn, choice)
        pipe.tuning = tuning
        return pipe

    # ------------------------------------------------------------------ scenes
    def set_scene(self, text: str) -> np.ndarray:
        """Switch the scene caption (or a cached scene name): one text-encoder call, applied from the next frame.

        Returns the (1, C) scene bias.
        """
        text = text.strip()
        if not text:
            raise InputError("The scene caption is empty; pass a description such as 'warehouse aisle'.")
        caption = self.cached_captions.get(text, text)
        bias = np.asarray(self._bias_fn(caption), dtype=np.float32).reshape(1, -1)
        want = self.config.head.in_channels
        if bias.shape[1] != want:
            raise BundleError(f"The scene bias for '{caption}' has {bias.shape[1]} values, expected {want}.")
        self.caption_state.set(caption, bias)
        return bias

    def follow_frame_captions(self) -> None:
        """Run each frame that carries a caption (synthetic scenes) with its own caption, until :meth:`set_scene`."""
        self.caption_state.follow_frames = True

    @property
    def caption(self) -> str:
        return self.caption_state.caption

    # ------------------------------------------------------------------ inference
    def infer(self, frame: np.ndarray, *, maps: bool = False) -> MetricDepth:
        """Metric depth of one RGB frame (H, W, 3 uint8), serially; ``maps`` adds A, B and D_r."""
        rgb = self.conformer(frame)
        if rgb is None:
            raise InputError(f"Cannot use a frame of shape {getattr(frame, 'shape', None)}: expected HxWx3 RGB.")
        results = list(Executor(self.stages, self.caption_state, mode=Mode.SERIAL, keep_maps=maps,
                                conformer=self.conformer).run(ArraySource([Frame(rgb=rgb, index=0)])))
        return results[0]

    def executor_for(self, mode: str | Mode = Mode.THROUGHPUT, *, queue_size: int = 2, maps: bool = False,
                     plan: str = "auto") -> Executor:
        """A fresh executor over this pipeline's stages (kept as ``self.executor`` for stop/counters).

        ``plan``: ``auto`` (GPU runners: ``device``; CPU runners: ``threads``), ``serial``,
        ``threads`` or ``device``; see :mod:`tr2m_edge.runtime.executor`. The executor's ``plan`` says which ran.
        """
        self.executor = Executor(self.stages, self.caption_state, mode=mode, queue_size=queue_size, keep_maps=maps,
                                 conformer=FrameConformer(self.frame_size), plan=plan)
        return self.executor

    def stream(self, source: FrameSource | Iterable[np.ndarray], *, mode: str | Mode = Mode.THROUGHPUT,
               queue_size: int = 2, maps: bool = False, plan: str = "auto") -> Iterator[MetricDepth]:
        """Yield metric depth for every frame of ``source`` (a FrameSource or any iterable of RGB arrays)."""
        src = source if isinstance(source, FrameSource) else ArraySource(source)
        yield from self.executor_for(mode, queue_size=queue_size, maps=maps, plan=plan).run(src)

    def stop(self) -> None:
        """Ask a running :meth:`stream` to stop capturing and drain."""
        if self.executor is not None:
            self.executor.stop()

    def close(self) -> None:
        self.stages.deactivate()

    def __enter__(self) -> "DepthPipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- bundle wiring
def _pick(bundle: Bundle, component: str, precision: str, fmt: str, gpu: bool) -> Any:
    order = [precision] if precision != "auto" else (["fp16", "fp32"] if gpu else ["fp32"])
    for p in order + ["fp32"]:
        entry = bundle.manifest.find(component, p, fmt)
        if entry is not None:
            return entry
    return None


def _bundle_runners(bundle: Bundle, choice: BackendChoice, precision: str, threads: int,
                    split: bool, device_id: int) -> dict[str, Runner]:
    from tr2m_edge.runtime.runners.onnxrt import OrtRunner

    bundle.check_usable(precision)  # an INT8 variant that failed calib's accuracy gate is refused
    if precision == "int8" and choice.name == "ort-trt":
        raise BackendError("The INT8 ONNX graphs are quantised for ONNX Runtime's CPU kernels (asymmetric uint8 "
                           "activations, which TensorRT does not take): use --backend ort-cpu, or INT8 TensorRT "
                           "engines (`tr2m-edge calib --trt`, then --backend trt).")
    comps = [c for c in FRAME_COMPONENTS if not (c == "image_encoder" and bundle.config.shared_backbone)]
    heavy = max(1, threads // 2) if split else threads
    providers = ORT_PROVIDERS.get(choice.name, ["cuda"] if choice.on_gpu else ["cpu"])
    options = _ort_trt_options(bundle, precision) if choice.name == "ort-trt" else {}
    keep_on_device = {"preprocess": ["image"], "depth": ["relative_depth", "image_tokens"],
                      "image_encoder": ["image_tokens"]}
    runners: dict[str, Runner] = {}
    used: set[str] = set()
    for comp in comps:
        if choice.name == "trt":
            engine = _pick(bundle, comp, precision, "engine", True)
            if engine is not None:
                from tr2m_edge.runtime.runners.trt import TrtRunner

                runners[comp] = TrtRunner(bundle.path(engine), device_id=device_id, name=comp)
                used.add(engine.precision)
                continue
            log.info("no TensorRT engine for %s: running its ONNX graph with ONNX Runtime", comp)
        # ONNX Runtime: the chosen ORT backend, or the fallback for a component without an engine.
        comp_providers = providers if choice.name != "trt" else (["cuda"] if _has_ort_cuda() else ["cpu"])
        gpu_ort = "cpu" not in comp_providers
        entry = _pick(bundle, comp, precision, "onnx", gpu_ort)
        if entry is None:
            bundle.require(comp, "fp32")  # raises the BundleError that lists what the bundle has
        used.add(entry.precision)
        runners[comp] = OrtRunner(
            bundle.path(entry), providers=comp_providers,
            intra_op_threads=1 if comp == "preprocess" and split else heavy, spinning=not split,
            device_outputs=keep_on_device.get(comp, []) if gpu_ort and choice.name != "trt" else (),
            device_id=device_id, name=comp,
            provider_options=options,
        )
    if precision not in ("auto", "fp32") and precision not in used:
        bundle.require("depth", precision)  # nothing at this precision: name what exists
    return runners


def _ort_trt_options(bundle: Bundle, precision: str) -> dict[str, dict[str, Any]]:
    """TensorRT EP options: fp16 kernels unless fp32 is asked for, engines cached per bundle."""
    from tr2m_edge.runtime.runners.onnxrt import TENSORRT

    key = (bundle.manifest.hashes.get("head") or bundle.root.resolve().name)[:16]
    options = {"trt_fp16_enable": "False" if precision == "fp32" else "True"}
    try:
        cache = user_cache_dir("ort-trt", key)
        cache.mkdir(parents=True, exist_ok=True)
    except (OSError, OutputError) as exc:  # a read-only home: build the engines per run instead
        log.warning("No TensorRT engine cache (%s): ONNX Runtime rebuilds its engines every run.", exc)
        return {TENSORRT: options}
    return {TENSORRT: {**options, "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}}


def _has_ort_cuda() -> bool:
    from tr2m_edge.runtime.runners.onnxrt import CUDA, available_providers

    return CUDA in available_providers()


def _bundle_captions(bundle: Bundle, persist: bool) -> tuple[BiasFn, dict[str, str], BiasFn]:
    """The bundle's caption -> bias function (the bundle's cache, then the user cache or memory),
    its cached captions by entry name, and the function for frame captions (looked up in the
    caches, computed when missing, never stored)."""
    lookup = caption_biases(bundle, persist=persist)
    return lookup.get_or_add, lookup.names(), lookup.get_or_compute
