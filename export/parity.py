"""Parity at export time: the PyTorch model as the reference runner set, the graphs as candidates.

The reference is the model's own contract components on :class:`TorchRunner` s (the
modules the exporter traced), recorded once per check frame by the runtime's comparator
(:func:`tr2m_edge.runtime.comparator.record_reference`); its end-to-end depth is
``TR2M.forward`` (optionally through the full cross-attention), computed independently of
the component plumbing. The candidates are the runtime's own runners over the written
files (:class:`OrtRunner`, :class:`TrtRunner`), so every export exercises the shipped
runners. ``export_bundle`` refuses to write a bundle beyond tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tr2m_edge.config import ModelConfig
from tr2m_edge.contract import CAPTION_COMPONENTS, COMPONENTS
from tr2m_edge.model.tr2m import TR2M
from tr2m_edge.parity import ParityReport
from tr2m_edge.runtime.comparator import Reference, check_parity, record_reference
from tr2m_edge.runtime.runners.base import Runner, activated
from tr2m_edge.runtime.runners.onnxrt import CONV_FREE_DISABLED, OrtRunner
from tr2m_edge.runtime.runners.torch_runner import TorchRunner, torch_components


def torch_reference(model: TR2M, frame: np.ndarray, token_ids: np.ndarray, *, reference: bool = False,
                    dynamic_frame: bool = False) -> Reference:
    """The PyTorch reference of one uint8 frame (H, W, 3) and caption ids (1, 77).

    Args:
        model: the model being exported.
        frame: RGB uint8 frame.
        token_ids: (1, 77) int64 caption ids.
        reference: end-to-end depth through the full cross-attention
            (``forward(reference=True)``) instead of the folded scene bias.
        dynamic_frame: the head takes ``frame_hw`` (no fixed frame size).
    """
    fs = (int(frame.shape[0]), int(frame.shape[1]))
    comps = torch_components(model, None if dynamic_frame else fs, which=COMPONENTS)
    with activated({k: TorchRunner(m, i, o, name=f"torch-{k}") for k, (m, i, o) in comps.items()}) as runners:
        ref = record_reference(runners, model.cfg, frame, token_ids, label="PyTorch")
    with torch.no_grad():
        image = torch.from_numpy(ref.inputs["depth"]["image"])
        text = torch.from_numpy(ref.outputs["text_encoder"]["text_embedding"])
        ref.depth = model(image, text_emb=text, frame_size=fs, reference=reference).depth.numpy()
    return ref


def onnx_runners(files: Mapping[str, Path], threads: int | None = None) -> dict[str, Runner]:
    """ONNX Runtime CPU runners (not yet activated) over component files."""
    return {c: OrtRunner(p, providers=("cpu",), intra_op_threads=threads, name=c,
                         disabled_optimizers=CONV_FREE_DISABLED if c in CAPTION_COMPONENTS else ())
            for c, p in files.items()}


def check_files(files: Mapping[str, Path], ref: Reference, cfg: ModelConfig, *, precision: str,
                backend: str = "onnxruntime-cpu", from_image: bool = False) -> ParityReport:
    """Parity of ONNX files on ONNX Runtime's CPU provider against ``ref``; ExportError beyond tolerance."""
    with activated(onnx_runners(files)) as runners:
        report = check_parity(runners, ref, cfg, precision=precision, backend=backend, from_image=from_image)
    report.check()
    return report


def second_size_parity(model: TR2M, onnx_files: Mapping[str, Path], ids: np.ndarray,
                       frame_size: tuple[int, int] | None) -> dict[str, Any]:
    """Per-component + chained parity of dynamic graphs at another input size (catches the
    silent 'output stays at the export size' trap). The preprocess graph resizes to the
    export size, so this chain starts from the reference's network input."""
    from tr2m_edge.export.graphs import default_frame_size, example_frame

    h, w = model.cfg.preprocess.input_size
    other = (h + 28, max(28, w - 28))
    alt = model.with_input_size(other)
    frame = example_frame(frame_size or default_frame_size(other), seed=2).numpy()
    ref = torch_reference(alt, frame, ids, dynamic_frame=frame_size is None).without("preprocess")
    report = check_files(onnx_files, ref, alt.cfg, precision="fp32", from_image=True)
    return {"input_size": list(other), **report.to_dict()}
