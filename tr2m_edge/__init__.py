"""tr2m-edge: train, export and run TR2M metric depth on edge GPUs and CPUs.

The core package (config, errors, preprocessing, metrics, bundle format) imports no
PyTorch at module level so that the runtime can run a bundle without it; the model and
checkpoint modules import torch.

The Python API is re-exported here, loaded on first use (``import tr2m_edge`` stays light)::

    from tr2m_edge import DepthPipeline      # = tr2m_edge.runtime.DepthPipeline; no PyTorch
"""

from __future__ import annotations

from typing import Any

from tr2m_edge.errors import Tr2mError

__version__ = "0.1.0"

__all__ = ["DepthPipeline", "MetricDepth", "Tr2mError", "__version__"]


def __getattr__(name: str) -> Any:
    """The runtime's API, imported lazily (the package facade: the only core file that names a layer)."""
    if name == "DepthPipeline":
        from tr2m_edge.runtime.pipeline import DepthPipeline

        return DepthPipeline
    if name == "MetricDepth":
        from tr2m_edge.runtime.results import MetricDepth

        return MetricDepth
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
