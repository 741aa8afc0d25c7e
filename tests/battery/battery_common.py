"""Constants and helpers of the battery tests (imported by name: this folder is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FRAME = (112, 144)
CAPTION = "a small wooden tabletop with two mugs"
CLI = [sys.executable, "-m", "tr2m_edge"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (to show nothing pre-existing was damaged)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def immutable(path: Path) -> bool:
    """Make ``path`` immutable (holds for root too); False where chattr is not permitted."""
    proc = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    return proc.returncode == 0


def mutable(path: Path) -> None:
    subprocess.run(["chattr", "-i", str(path)], capture_output=True)
