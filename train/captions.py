"""Scene captions: TR2M's 15-line caption files, one-file zero-shot lists, a default caption.

Training data carries one caption file per image (``text/<dataset>/<split>/<image path
without extension>.txt``) with 15 lines: about ten free-form captions followed by five
object lists ("An image with a sky, two people, ..."). Training picks a random line per
sample, evaluation always line 0. Zero-shot sets use one file per dataset with one
caption per sample, in loader order.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tr2m_edge.errors import DataError

log = logging.getLogger(__name__)
CAPTION_LINES = 15  # lines per caption file in the released format


def read_caption_file(path: str | Path) -> list[str]:
    """The non-empty, stripped lines of a caption file; DataError when missing or empty."""
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"Caption file not found: {p}. Each image needs a caption .txt (up to {CAPTION_LINES} lines, "
            "line 0 used for evaluation); write it, point --captions at the folder holding them, "
            "or pass --default-caption TEXT."
        )
    try:
        lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read caption file {p}: {exc}. Save it as UTF-8 text.") from None
    lines = [line for line in lines if line]
    if not lines:
        raise DataError(f"Caption file {p} is empty; it needs at least one caption line.")
    return lines


def pick_caption(lines: list[str], rng: np.random.Generator | None) -> str:
    """Line 0 without an RNG (evaluation), a uniformly random line with one (training)."""
    if rng is None or len(lines) == 1:
        return lines[0]
    return lines[int(rng.integers(len(lines)))]


class CaptionSource:
    """Where a dataset split's captions come from.

    Args:
        location: a folder with one caption file per image (``<rel>.txt``, where ``rel``
            is the image's path relative to the dataset's image root without its
            extension; ``<rel>.<ext>.txt`` is accepted too), or a single .txt file with one
            caption per sample in loader order, or None.
        default: caption used for images that have no caption file (and for every image
            when ``location`` is None). Without it a missing file is a DataError that names it.
    """

    def __init__(self, location: str | Path | None, default: str | None = None) -> None:
        self.location = Path(location) if location is not None else None
        self.default = default.strip() if default else None
        self._per_sample: list[str] | None = None
        if self.location is not None and self.location.is_file():
            self._per_sample = read_caption_file(self.location)
        if self.location is None and self.default is None:
            raise DataError("No captions: give a caption folder/file (--captions) or --default-caption TEXT.")

    def has(self, rel: str, index: int) -> bool:
        """Whether sample ``index`` (image path ``rel``) has its own caption (a file or a line; defaults do not count)."""
        if self._per_sample is not None:
            return index < len(self._per_sample)
        if self.location is None:
            return False
        if (self.location / f"{rel}.txt").is_file():
            return True
        return "*" not in rel and any(self.location.glob(f"{rel}.*.txt"))

    def lines(self, rel: str, index: int) -> list[str]:
        """Caption lines of sample ``index`` whose image path (relative, no extension) is ``rel``."""
        if self._per_sample is not None:
            if index < len(self._per_sample):
                return [self._per_sample[index]]
            if self.default:
                return [self.default]
            raise DataError(
                f"Caption file {self.location} has {len(self._per_sample)} lines but sample {index} "
                f"({rel}) needs line {index + 1}; add captions or pass --default-caption TEXT."
            )
        if self.location is None:
            return [self.default or ""]
        path = self.location / f"{rel}.txt"
        if not path.is_file():
            matches = sorted(self.location.glob(f"{rel}.*.txt")) if "*" not in rel else []
            if matches:
                path = matches[0]
            elif self.default is not None:
                return [self.default]
        return read_caption_file(path)
