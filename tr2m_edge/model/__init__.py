"""TR2M model code: frozen encoders, the rescale head, the contract's components, the composed model.

The names below are imported lazily, so the torch-free modules of this package
(:mod:`.hub`, :mod:`.encoder_sources`) load without PyTorch: a command can check that its
encoders are there before paying for the heavy imports.
"""

from __future__ import annotations

from tr2m_edge.lazy import lazy_getattr

_EXPORTS = {
    "clip_metric_depth": "components", "postprocess_depth": "components",
    "ScaleMapHead": "head", "build_head": "head", "count_parameters": "head", "metric_from_relative": "head",
    "TR2M": "tr2m", "DepthOutput": "tr2m", "build_model": "tr2m",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
