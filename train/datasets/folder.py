"""The generic folder format: users' own RGB-D data laid out as rgb/, depth/ and captions/."""

from __future__ import annotations

from pathlib import Path

from tr2m_edge.errors import DataError
from tr2m_edge.train.augment import AugmentConfig
from tr2m_edge.train.captions import CaptionSource
from tr2m_edge.train.datasets.base import IMAGE_EXTS, DepthDataset, SampleRef


class FolderDataset(DepthDataset):
    """Users' own data in the generic folder format.

    Layout::

        ROOT/
          rgb/<name>.png|.jpg            RGB images (sub-folders allowed: <name> may be a/b/c)
          depth/<name>.png               16-bit PNG, millimetres, 0 = no measurement
             or depth/<name>.npy         float32 HxW metres, 0/NaN = no measurement
          captions/<name>.txt            1-15 caption lines (line 0 used for evaluation)
          train.txt, val.txt, test.txt   optional: one <name> per line; a split without a
                                         file uses every image under rgb/

    Depth must be aligned with the image pixel for pixel. ``captions`` may point elsewhere
    (a folder of <name>.txt or one file with a line per sample), or be replaced by a
    default caption.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        captions: CaptionSource | None = None,
        size: tuple[int, int] | None = None,
        augment: AugmentConfig | None = None,
        default_caption: str | None = None,
    ) -> None:
        root = Path(root)
        if not (root / "rgb").is_dir():
            raise DataError(f"{root} is not a dataset folder: it has no rgb/ sub-folder (see the folder format).")
        super().__init__("folder", split, captions or CaptionSource(root / "captions", default_caption),
                         size, augment, depth_scale=1000.0)
        split_file = root / f"{split}.txt"
        if split_file.is_file():
            names = [ln.strip() for ln in split_file.read_text().splitlines() if ln.strip()]
        else:
            names = sorted(
                str(p.relative_to(root / "rgb").with_suffix("")).replace("\\", "/")
                for p in (root / "rgb").rglob("*") if p.suffix.lower() in IMAGE_EXTS
            )
        for name in names:
            image = _find(root / "rgb", name, IMAGE_EXTS)
            if image is None:
                raise DataError(f"{split_file} lists '{name}' but rgb/{name}.png|.jpg does not exist.")
            depth = _find(root / "depth", name, (".png", ".npy"))
            if depth is None:
                raise DataError(
                    f"No depth for {image}: expected depth/{name}.png (16-bit millimetres) or depth/{name}.npy (metres)."
                )
            self.samples.append(SampleRef(image, depth, name))
        self._require_samples(root / "rgb")


def _find(folder: Path, name: str, exts: tuple[str, ...]) -> Path | None:
    for ext in exts:
        p = folder / f"{name}{ext}"
        if p.is_file():
            return p
    return None
