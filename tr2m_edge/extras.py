"""Which install extra a missing third-party module belongs to, and the one line that says so.

The base install (``pip install tr2m-edge``) is the runtime's Python side only (numpy,
typer, rich, ftfy); the rest comes in extras (pyproject.toml, README "Install"):

    [cpu]     onnxruntime                      [gpu]   onnxruntime-gpu, tensorrt, polygraphy, cuda-python
    [opencv]  opencv-python-headless           [gui]   opencv-python (windows for --show)
    [export]  torch, transformers, open_clip, onnx, ...   [train]  [export] + h5py, pillow
    [dev]     pytest

The CLI turns a ``ModuleNotFoundError`` of one of these modules into
"tr2m-edge COMMAND needs WHAT: pip install 'tr2m-edge[EXTRA]'" (:func:`missing_module_message`).
"""

from __future__ import annotations

TRAIN_COMMANDS = frozenset({"train", "eval", "distill", "demo"})  # need [train]; other PyTorch users [export]
_PYTORCH = None  # extra chosen by the command: [train] or [export]

# top-level import name -> (what a person calls it, extra; None: [train] or [export] by command)
MODULES: dict[str, tuple[str, str | None]] = {
    "torch": ("PyTorch", _PYTORCH), "torchvision": ("torchvision", _PYTORCH),
    "transformers": ("transformers", _PYTORCH), "open_clip": ("open_clip", _PYTORCH),
    "onnx": ("the onnx package", _PYTORCH), "onnxscript": ("onnxscript", _PYTORCH),
    "safetensors": ("safetensors", _PYTORCH),
    "h5py": ("h5py", "train"), "PIL": ("Pillow", "train"),
    "cv2": ("OpenCV", "opencv"), "onnxruntime": ("ONNX Runtime", "cpu"),
    "tensorrt": ("TensorRT", "gpu"), "cuda": ("cuda-python", "gpu"), "polygraphy": ("Polygraphy", "gpu"),
}

_AFTER = {
    "opencv": " (or [gui] for --show windows; on a Jetson, JetPack's OpenCV through a --system-site-packages venv)",
    "cpu": " (or [gpu] on an NVIDIA GPU; on a Jetson, NVIDIA's onnxruntime-gpu wheel for JetPack)",
    "gpu": " on an x86_64 NVIDIA GPU machine (on a Jetson: JetPack's TensorRT through a --system-site-packages venv)",
}


def extra_for(module: str, command: str | None = None) -> str | None:
    """The extra that installs ``module`` (a dotted name is reduced to its top level), or None."""
    top = module.split(".")[0]
    if top not in MODULES:
        return None
    extra = MODULES[top][1]
    return extra or ("train" if command in TRAIN_COMMANDS else "export")


def install_hint(module: str, command: str | None = None) -> str | None:
    """``pip install 'tr2m-edge[EXTRA]'`` (+ the alternatives) for ``module``, or None when unknown."""
    extra = extra_for(module, command)
    if extra is None:
        return None
    return f"pip install 'tr2m-edge[{extra}]'" + _AFTER.get(extra, "")


def missing_module_message(module: str, command: str | None = None) -> str | None:
    """The one-line error for a missing ``module`` while running ``tr2m-edge COMMAND`` (None: not ours)."""
    hint = install_hint(module, command)
    if hint is None:
        return None
    what = MODULES[module.split(".")[0]][0]
    who = f"tr2m-edge {command}" if command else "this command"
    return f"{who} needs {what} ({module.split('.')[0]} is not installed): {hint}."
