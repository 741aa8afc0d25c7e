"""Readers of the public datasets TR2M trains and evaluates on, in their published layouts.

Caption files default to ``ROOT/text/<dataset>/<split>/<rel>.txt`` where ``rel`` is the
image path relative to the dataset's image folder, without extension (see
:mod:`tr2m_edge.train.captions`).
"""

from __future__ import annotations

from pathlib import Path

from tr2m_edge.errors import DataError
from tr2m_edge.train.augment import AugmentConfig
from tr2m_edge.train.captions import CaptionSource
from tr2m_edge.train.datasets.base import IMAGE_EXTS, DepthDataset, SampleRef

SPLIT_DIRS = ("", "splits", "data_splits", "train_test_inputs")  # where split files are looked for


def _split_file(root: Path, names: tuple[str, ...]) -> Path | None:
    for folder in SPLIT_DIRS:
        for name in names:
            p = root / folder / name
            if p.is_file():
                return p
    return None


def _lines(path: Path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def _rel(path: str) -> str:
    return str(Path(path.lstrip("/")).with_suffix("")).replace("\\", "/")


def _captions(root: Path, name: str, split: str, captions: CaptionSource | None, default: str | None) -> CaptionSource:
    return captions or CaptionSource(root / "text" / name / split, default)


class NyuDataset(DepthDataset):
    """NYU Depth v2 in the BTS layout (depth: 16-bit PNG in millimetres)::

        ROOT/sync/<scene>/rgb_00045.jpg + sync_depth_00045.png                (train)
        ROOT/official_splits/test/<class>/rgb_00045.jpg + sync_depth_00045.png (654 test)
        nyudepthv2_{train,test}_files_with_gt.txt  in ROOT, ROOT/splits, ROOT/data_splits
                                                   or ROOT/train_test_inputs (optional)

    A split line is ``<rgb> <depth> <focal>`` relative to ``sync/`` (train) or
    ``official_splits/test/`` (test). Without a split file, every ``rgb_*`` image with its
    ``sync_depth_*.png`` partner is used.
    """

    def __init__(self, root: str | Path, split: str = "train", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        root = Path(root)
        if split not in ("train", "test"):
            raise DataError(f"NYUv2 splits are 'train' and 'test'; got '{split}'.")
        super().__init__("nyu", split, _captions(root, "nyu", split, captions, default_caption), size, augment, 1000.0)
        data = root / ("sync" if split == "train" else "official_splits/test")
        if not data.is_dir():
            raise DataError(f"{data} does not exist; an NYUv2 root in the BTS layout holds sync/ and official_splits/test/.")
        listing = _split_file(root, (f"nyudepthv2_{split}_files_with_gt.txt",))
        if listing is not None:
            for parts in _lines(listing):
                if len(parts) < 2:
                    raise DataError(f"{listing}: line '{' '.join(parts)}' needs '<rgb> <depth> [focal]'.")
                self.samples.append(SampleRef(data / parts[0].lstrip("/"), data / parts[1].lstrip("/"), _rel(parts[0])))
        else:
            for image in sorted(p for p in data.rglob("rgb_*") if p.suffix.lower() in IMAGE_EXTS):
                depth = image.with_name("sync_depth_" + image.stem[len("rgb_"):] + ".png")
                if depth.is_file():
                    self.samples.append(SampleRef(image, depth, _rel(str(image.relative_to(data)))))
        self._require_samples(data)


class KittiDataset(DepthDataset):
    """KITTI with the Eigen split and the annotated depth maps (16-bit PNG / 256 metres)::

        ROOT/raw_data/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
        ROOT/data_depth_annotated/[train/|val/]2011_09_26_drive_0002_sync/proj_depth/
             groundtruth/image_02/0000000069.png
        eigen_{train,test}_files_with_gt.txt   in ROOT, ROOT/splits, ROOT/data_splits or
                                               ROOT/train_test_inputs (required)

    A split line is ``<raw image> <annotated depth | None> <focal>``; lines without ground
    truth are skipped (the usual 652 of the 697 Eigen test frames remain). Training takes
    the 352x1216 KB crop; evaluation predicts on it and pastes into the full frame.
    """

    def __init__(self, root: str | Path, split: str = "train", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        root = Path(root)
        super().__init__("kitti", split, _captions(root, "kitti", split, captions, default_caption), size, augment, 256.0)
        raw = next((root / d for d in ("raw_data", "raw", "kitti_raw") if (root / d).is_dir()), root)
        gt_root = root / "data_depth_annotated"
        names = (f"eigen_{split}_files_with_gt.txt", f"eigen_{split}_files.txt")
        listing = _split_file(root, names)
        if listing is None:
            raise DataError(
                f"No KITTI split file for '{split}': expected {names[0]} in {root} or its "
                f"{', '.join(d for d in SPLIT_DIRS if d)}/ folder (the Eigen split lists of BTS)."
            )
        for parts in _lines(listing):
            if len(parts) < 2 or parts[1] == "None":
                continue
            gt_rel = parts[1].lstrip("/")
            gt = next((c for c in (gt_root / gt_rel, gt_root / "train" / gt_rel, gt_root / "val" / gt_rel)
                       if c.is_file()), gt_root / gt_rel)
            self.samples.append(SampleRef(raw / parts[0].lstrip("/"), gt, _rel(parts[0])))
        self._require_samples(listing)


class VoidDataset(DepthDataset):
    """VOID (void_release) with its list files (depth: 16-bit PNG / 256 metres)::

        ROOT/void_1500/{train,test}_image.txt          one image path per line, relative to ROOT
        ROOT/void_1500/{train,test}_ground_truth.txt   the matching ground-truth paths
        ROOT/void_1500/data/<sequence>/image/<t>.png, .../ground_truth/<t>.png

    ``variant`` picks the sparse-density release (void_150, void_500, void_1500); the
    dense ground truth is the same in all three.
    """

    def __init__(self, root: str | Path, split: str = "train", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None, variant: str = "void_1500") -> None:
        root = Path(root)
        super().__init__("void", split, _captions(root, "void", split, captions, default_caption), size, augment, 256.0)
        images, gts = root / variant / f"{split}_image.txt", root / variant / f"{split}_ground_truth.txt"
        for p in (images, gts):
            if not p.is_file():
                raise DataError(f"{p} does not exist; a VOID root holds {variant}/{split}_image.txt and "
                                f"{variant}/{split}_ground_truth.txt.")
        image_lines = [ln[0] for ln in _lines(images)]
        gt_lines = [ln[0] for ln in _lines(gts)]
        if len(image_lines) != len(gt_lines):
            raise DataError(f"{images} lists {len(image_lines)} images but {gts} lists {len(gt_lines)} depth maps.")
        for image, gt in zip(image_lines, gt_lines):
            self.samples.append(SampleRef(root / image, root / gt, _rel(image)))
        self._require_samples(images)


class C3vdDataset(DepthDataset):
    """C3VD colonoscopy sequences (depth: 16-bit TIFF, value * 100 / 65535 millimetres)::

        ROOT/<sequence>/0000_color.png + 0000_depth.tiff
        ROOT/<split>.txt   optional: one '<sequence>/NNNN_color.png' per line

    Depth stays in millimetres (0-100), as the released protocol evaluates it.
    """

    def __init__(self, root: str | Path, split: str = "train", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        root = Path(root)
        super().__init__("c3vd", split, _captions(root, "c3vd", split, captions, default_caption), size, augment,
                         65535.0 / 100.0)
        listing = _split_file(root, (f"{split}.txt",))
        if listing is not None:
            colours = [root / ln[0] for ln in _lines(listing)]
        else:
            colours = sorted(root.rglob("*_color.png"))
        for colour in colours:
            depth = colour.with_name(colour.name.replace("_color.png", "_depth.tiff"))
            if not depth.is_file():
                raise DataError(f"No depth for {colour}: expected {depth.name} next to it.")
            self.samples.append(SampleRef(colour, depth, _rel(str(colour.relative_to(root)))))
        self._require_samples(root)
