"""One exception hierarchy for the whole toolkit.

Every error a user can cause (a missing file, an unknown preset, a size that is not a
multiple of 14, a corrupt checkpoint, a tampered bundle) is a :class:`Tr2mError`. The CLI
prints ``str(error)`` as one line and exits non-zero; library callers catch one type.
Messages say what was given, what was expected, and what to do.
"""

from __future__ import annotations


class Tr2mError(Exception):
    """Base class of every error raised on purpose by tr2m-edge."""

    exit_code: int = 2


class ConfigError(Tr2mError):
    """A configuration value, preset name or size is invalid."""


class CheckpointError(Tr2mError):
    """A checkpoint or weight file is missing, corrupt, foreign or mis-shaped."""


class InputError(Tr2mError):
    """User-supplied data (image, frame, caption, path) is missing or malformed."""


class OutputError(Tr2mError):
    """An output path cannot be written (a folder where a file is expected, read-only, full disk)."""


class DataError(Tr2mError):
    """A dataset folder or file does not follow the expected layout."""


class ModelLoadError(Tr2mError):
    """A frozen encoder could not be loaded from its local path or hub id."""


class BundleError(Tr2mError):
    """A deployment bundle is missing, tampered with, or built for another device."""


class BackendError(Tr2mError):
    """An inference backend (ONNX Runtime, TensorRT, CUDA, PyTorch) is unavailable or failed."""


class ExportError(Tr2mError):
    """Exporting a graph failed or its parity check exceeded tolerance."""
