"""Writing an INT8 variant into a bundle: ``*.int8.onnx`` files, their manifest entries and the record.

A calibration run replaces the bundle's whole INT8 variant (graphs, INT8 engines and the
``calibration`` record): the accuracy gate measured exactly the new set, so no older
INT8 file may stay next to it. The order keeps the bundle valid if the process dies at
any point: the new graphs are staged in a hidden folder inside the bundle; the manifest
is first rewritten without the old INT8 entries (the bundle is then a plain fp32/fp16
bundle), then the staged files are moved into place, then the manifest with the new
entries (sha256, inputs, outputs) and the record is written, atomically each time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from tr2m_edge.bundle import Bundle, ComponentFile, Manifest, component_file, write_manifest

log = logging.getLogger(__name__)
INT8_COMPONENTS = ("depth", "image_encoder", "head")  # per-frame graphs worth quantising; text runs once per caption


def int8_file(component: str, fmt: str = "onnx") -> str:
    """The bundle-relative name of a component's INT8 file (``depth.int8.onnx``, ``depth.int8.engine``)."""
    return f"{component}.int8.{fmt}"


def install_variant(bundle: Bundle, staged: dict[tuple[str, str], Path], record: dict[str, Any],
                    tensorrt: dict[str, Any] | None = None) -> Manifest:
    """Move the staged INT8 files into ``bundle`` and record them in its manifest.

    Args:
        bundle: the opened bundle (its manifest is replaced, also in this object).
        staged: (component, format) -> staged file (``onnx`` graphs, ``engine`` files).
        record: the calibration record (``Manifest.calibration``).
        tensorrt: the manifest's new ``tensorrt`` entry when INT8 engines were built.

    Returns:
        The new manifest.
    """
    root = bundle.root
    old = bundle.manifest
    stale = [f for f in old.files if f.precision == "int8"]
    plain = dataclasses.replace(old, files=[f for f in old.files if f.precision != "int8"], calibration=None)
    write_manifest(root, plain)
    for entry in stale:
        (root / entry.file).unlink(missing_ok=True)
    for (comp, fmt), path in staged.items():
        os.replace(path, root / int8_file(comp, fmt))
    new_files: list[ComponentFile] = []
    for comp, fmt in sorted(staged, key=lambda k: (k[0], k[1] != "onnx")):
        source = root / int8_file(comp) if fmt == "engine" else None  # an engine's I/O: its Q/DQ graph's
        new_files.append(component_file(root, int8_file(comp, fmt), comp, "int8", fmt=fmt, io_from=source))
    manifest = dataclasses.replace(plain, files=plain.files + new_files, calibration=record,
                                   tensorrt=tensorrt if tensorrt is not None else plain.tensorrt)
    write_manifest(root, manifest)
    bundle.manifest = manifest
    log.info("wrote %s into %s", ", ".join(f.file for f in new_files), root)
    return manifest


def remove_staging(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
