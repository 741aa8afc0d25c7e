"""tr2m-edge: train, export and run TR2M metric depth on edge GPUs and CPUs.

The core package (config, errors, preprocessing, metrics, bundle format) imports no
PyTorch at module level so that the runtime can run a bundle without it; the model and
checkpoint modules import torch.
"""

from tr2m_edge.errors import Tr2mError

__version__ = "0.1.0"

__all__ = ["Tr2mError", "__version__"]
