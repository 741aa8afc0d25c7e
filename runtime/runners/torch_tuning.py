"""Settings of the PyTorch path, measured per component on the device and chosen by ``auto``.

Each per-frame component (preprocess, depth, image encoder, head) is timed on the target
device in every candidate setting (dtype fp32 / fp16 / bf16, channels-last or not,
``torch.compile`` or not, with CUDA graph replay where the frame size is fixed), on
inputs made by the fp32 model itself from a synthetic frame. A setting counts only when
its outputs agree with the fp32 eager outputs (relative RMS at most ``tolerance``); the
fastest one that agrees is kept, and every trial goes into the :class:`TuneReport` that
``bench`` and ``run`` record. Attention is PyTorch's scaled-dot-product attention
throughout (transformers' ``sdpa`` for DINOv2 and the Depth Anything backbone,
``nn.MultiheadAttention`` with ``need_weights=False`` in the head), which picks the flash /
memory-efficient kernels on CUDA by itself: it is recorded, not searched.

Importing this module imports PyTorch (the torch backend only).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from tr2m_edge.contract import BIAS, FRAME, FRAME_HW
from tr2m_edge.runtime.runners.torch_runner import TorchRunner, torch_components

log = logging.getLogger(__name__)

_MEASURED: dict[Any, tuple[dict[str, "TorchSettings"], "TuneReport"]] = {}
TOLERANCE = 2e-2  # relative RMS vs fp32 eager: fp16 gives ~1e-3, bf16 ~5e-3 on these models


@dataclass(frozen=True)
class TorchSettings:
    """How one component runs on the torch backend."""

    dtype: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    cuda_graph: bool = False

    @property
    def label(self) -> str:
        parts = [self.dtype] + [name for name, on in (("channels-last", self.channels_last), ("compile", self.compile),
                                                      ("cuda-graph", self.cuda_graph)) if on]
        return "+".join(parts)

    def runner_kwargs(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "channels_last": self.channels_last, "compile": self.compile,
                "cuda_graph": self.cuda_graph}


def candidates(device_kind: str, *, fixed_size: bool = True) -> list[TorchSettings]:
    """The settings ``auto`` tries first: on CUDA fp16 / bf16 x channels-last, each with CUDA
    graphs where the frame size is fixed (plus fp32 eager, the reference); on the CPU fp32
    with and without channels-last. ``torch.compile`` is tried after these, on the winner
    only (:func:`tune`'s ``compile``): one compilation per component, not one per candidate."""
    if device_kind != "cuda":
        return [TorchSettings(), TorchSettings(channels_last=True)]
    out = [TorchSettings()]
    for dtype in ("fp16", "bf16"):
        for channels_last in (False, True):
            out.append(TorchSettings(dtype, channels_last, cuda_graph=fixed_size))
    return out


@dataclass
class Trial:
    """One component in one setting: median ms per call and the error against fp32 eager."""

    setting: str
    ms: float | None
    rel_error: float | None
    ok: bool
    note: str = ""


@dataclass
class TuneReport:
    """Every trial and the setting chosen per component."""

    device: str
    tolerance: float
    attention: str = "sdpa (PyTorch scaled-dot-product attention; flash / memory-efficient kernels on CUDA)"
    trials: dict[str, list[Trial]] = field(default_factory=dict)
    chosen: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.chosen.items())


def _rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float(torch.sqrt(torch.mean((a - b) ** 2)) / (torch.sqrt(torch.mean(b ** 2)) + 1e-12))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_feeds(comps: dict[str, Any], device: str, bias: torch.Tensor,
                    frame: np.ndarray) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict[str, torch.Tensor]]]:
    """(feeds, outputs) of every per-frame component of ``comps`` (:func:`torch_components`),
    computed by the fp32 eager modules on ``frame``."""
    dev = torch.device(device)
    values: dict[str, torch.Tensor] = {FRAME: torch.from_numpy(frame).to(dev), BIAS: bias.to(dev).float(),
                                       FRAME_HW: torch.tensor(frame.shape[:2], dtype=torch.int64)}
    feeds: dict[str, dict[str, torch.Tensor]] = {}
    outputs: dict[str, dict[str, torch.Tensor]] = {}
    with torch.no_grad():
        for name, (module, ins, outs) in comps.items():
            module.to(dev).eval()
            feed = {s.name: values[s.name] for s in ins}
            out = module(**feed)
            if not isinstance(out, dict):
                out = dict(zip((s.name for s in outs), out if isinstance(out, tuple) else (out,)))
            feeds[name] = feed
            outputs[name] = {k: v.float() for k, v in out.items()}
            values.update(outputs[name])
    return feeds, outputs


def _time(runner: TorchRunner, feed: dict[str, torch.Tensor], repeats: int) -> tuple[float, dict[str, torch.Tensor]]:
    device = runner.device or torch.device("cpu")
    out = runner.run_async(feed)  # first call: compile / capture happen here, not timed
    out = runner.run_async(feed)
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = runner.run_async(feed)
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), out


def _trial(module: Any, ins: Any, outs: Any, device: str, name: str, s: TorchSettings,
           feed: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], repeats: int, tolerance: float,
           trials: list[Trial], best: tuple[float, TorchSettings] | None) -> tuple[float, TorchSettings] | None:
    """Time one setting on a copy of ``module``; append its :class:`Trial`; the new best (ms, setting)."""
    runner = TorchRunner(copy.deepcopy(module), ins, outs, device=device, name=f"tune-{name}",
                         host_outputs=False, **s.runner_kwargs())
    try:
        runner.activate()
        ms, out = _time(runner, feed, repeats)
        error = max(_rel_rms(out[k], ref[k]) for k in ref)
        ok = error <= tolerance
        trials.append(Trial(s.label, round(ms, 4), error, ok, "" if ok else f"differs from fp32 by {error:.2g}"))
        if ok and (best is None or ms < best[0]):
            return ms, s
    except Exception as exc:  # noqa: BLE001 - a setting the device or an op does not support is skipped
        trials.append(Trial(s.label, None, None, False, f"{type(exc).__name__}: {str(exc)[:200]}"))
    finally:
        runner.deactivate()
    return best


def tune(model: Any, frame_size: tuple[int, int] | None, device: str, *, bias: torch.Tensor,
         settings: Sequence[TorchSettings] | None = None, repeats: int = 5, tolerance: float = TOLERANCE,
         seed: int = 0, compile: bool | None = None) -> tuple[dict[str, TorchSettings], TuneReport]:
    """Measure every per-frame component of ``model`` in each of ``settings`` on ``device``.

    Args:
        model: the TR2M model (fp32; left as it is: trials run on copies of its modules).
        frame_size: the fixed frame (H, W), or None (CUDA graphs are then not tried).
        device: ``cpu`` or ``cuda[:N]``.
        bias: a (1, C) scene bias for the head's input.
        settings: the candidates (default: :func:`candidates` for the device).
        repeats: timed calls per trial (median kept).
        tolerance: largest relative RMS difference from fp32 eager a setting may have.
        compile: also try the winning setting under ``torch.compile`` (default: on CUDA).

    Returns:
        (component -> chosen setting, the report of every trial).
    """
    dev = torch.device(device)
    if settings is None:
        settings = candidates(dev.type, fixed_size=frame_size is not None)
    compile = dev.type == "cuda" if compile is None else compile
    key = (json.dumps(model.cfg.to_dict(), sort_keys=True), frame_size, str(dev), tuple(settings), repeats, tolerance,
           compile)
    if key in _MEASURED:  # the choice depends on the architecture and device, not the weights: once per process
        return _MEASURED[key]
    h, w = frame_size or model.cfg.preprocess.input_size
    frame = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    comps = torch_components(model, frame_size)
    feeds, ref = reference_feeds(comps, device, bias, frame)
    report = TuneReport(device=str(dev), tolerance=tolerance)
    chosen: dict[str, TorchSettings] = {}
    for name, (module, ins, outs) in comps.items():
        trials: list[Trial] = []
        best: tuple[float, TorchSettings] | None = None
        for s in settings:
            if name == "preprocess" and s.dtype != "fp32":
                continue  # uint8 in, normalised fp32 out: nothing to gain, and its output feeds fp32 graphs too
            best = _trial(module, ins, outs, device, name, s, feeds[name], ref[name], repeats, tolerance, trials, best)
        if compile and best is not None:
            best = _trial(module, ins, outs, device, name, dataclasses.replace(best[1], compile=True), feeds[name],
                          ref[name], repeats, tolerance, trials, best)
        chosen[name] = best[1] if best is not None else TorchSettings()
        report.trials[name] = trials
        report.chosen[name] = chosen[name].label
        log.info("torch tuning: %s -> %s", name, chosen[name].label)
    _MEASURED[key] = (chosen, report)
    return chosen, report
