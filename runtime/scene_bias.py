"""Caption -> scene bias on a bundle's own graphs, through the runtime's runners (no PyTorch).

The numpy CLIP tokenizer, then ``text_encoder`` (fp32, or the fp16 graph of a bundle
exported with ``--text-fp16``) and ``scene_bias`` on ONNX Runtime's CPU provider (:func:`tr2m_edge.runtime.stages.caption_bias`: the same runner family and order
the parity checks use). Both graphs' sha256 are checked against the manifest before they
load. :func:`caption_cache` opens a bundle's own caption cache (``scenes/``: ``export``, ``scenes
add``) with this as its compute step; :func:`caption_biases` is the runtime's lookup, which
reads that cache and stores new captions in the user cache or memory, never in the bundle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tr2m_edge.bundle import Bundle, open_bundle, verify_file
from tr2m_edge.caption_cache import CaptionCache, CaptionLookup
from tr2m_edge.config import CONTEXT_LENGTH
from tr2m_edge.contract import CAPTION_COMPONENTS
from tr2m_edge.errors import BundleError
from tr2m_edge.runtime.runners.onnxrt import CONV_FREE_DISABLED, OrtRunner
from tr2m_edge.runtime.stages import caption_bias


class SceneBiasRunner:
    """Captions -> (B, C) float32 scene biases from a bundle's graphs; sessions load on first use.

    Args:
        bundle: an opened bundle or its folder.
        threads: ONNX Runtime intra-op threads (default: ONNX Runtime's).
    """

    def __init__(self, bundle: Bundle | str | Path, threads: int | None = None) -> None:
        from tr2m_edge.tokenizer import ClipTokenizer

        self.bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle, verify=False)
        man = self.bundle.manifest
        vocab = man.tokenizer.get("file")
        if not vocab:
            raise BundleError(f"Bundle {self.bundle.root} declares no tokenizer file in its manifest; re-export it.")
        self.tokenizer = ClipTokenizer(self.bundle.root / str(vocab), int(man.tokenizer.get("context_length", CONTEXT_LENGTH)))
        self.threads = threads
        self.runners: dict[str, OrtRunner] = {}

    def _activate(self) -> dict[str, OrtRunner]:
        if not self.runners:
            text_precision = self.bundle.manifest.model.text.precision  # fp16: the released code's CUDA embedding
            for comp in CAPTION_COMPONENTS:
                precision = text_precision if comp == "text_encoder" else "fp32"
                path = verify_file(self.bundle, self.bundle.require(comp, precision, "onnx"))
                self.runners[comp] = OrtRunner(path, providers=("cpu",), intra_op_threads=self.threads, name=comp,
                                               disabled_optimizers=CONV_FREE_DISABLED).activate()
        return self.runners

    def __call__(self, captions: list[str]) -> np.ndarray:
        """Captions -> (B, C) float32 scene biases."""
        bias = caption_bias(self._activate(), self.tokenizer(captions))
        return np.ascontiguousarray(bias, dtype=np.float32)

    def close(self) -> None:
        for runner in self.runners.values():
            runner.deactivate()
        self.runners = {}


def caption_cache(bundle: Bundle | str | Path) -> CaptionCache:
    """A bundle's caption cache that computes missing captions with :class:`SceneBiasRunner`."""
    b = bundle if isinstance(bundle, Bundle) else open_bundle(bundle, verify=False)
    return CaptionCache(b, compute=SceneBiasRunner(b))


def caption_biases(bundle: Bundle | str | Path, persist: bool = True, threads: int | None = None) -> CaptionLookup:
    """The runtime's caption -> bias lookup for a bundle (:class:`~tr2m_edge.caption_cache.CaptionLookup`).

    Args:
        persist: store new captions in the user cache (False: in memory only).
        threads: ONNX Runtime threads of the text encoder (default: ONNX Runtime's).
    """
    b = bundle if isinstance(bundle, Bundle) else open_bundle(bundle, verify=False)
    return CaptionLookup(b, SceneBiasRunner(b, threads=threads), persist=persist)
