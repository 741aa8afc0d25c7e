"""Readers of the public datasets TR2M trains and evaluates on, in their published layouts.

Caption files default to ``ROOT/text/<dataset>/<split>/<rel>.txt`` where ``rel`` is the
image path relative to the dataset's image folder, without extension (see
:mod:`tr2m_edge.train.captions`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from tr2m_edge.errors import DataError
from tr2m_edge.train.augment import AugmentConfig
from tr2m_edge.train.captions import CaptionSource
from tr2m_edge.train.datasets.base import (IMAGE_EXTS, DepthDataset, SampleRef, find_split_file, rel_name,
                                           split_dirs_text, split_lines)

log = logging.getLogger(__name__)


def _captions(root: Path, name: str, split: str, captions: CaptionSource | None, default: str | None) -> CaptionSource:
    return captions or CaptionSource(root / "text" / name / split, default)


class NyuDataset(DepthDataset):
    """NYU Depth v2 in the BTS layout (depth: 16-bit PNG in millimetres)::

        ROOT/sync/<scene>/rgb_00045.jpg + sync_depth_00045.png                (train)
        ROOT/official_splits/test/<class>/rgb_00045.jpg + sync_depth_00045.png (654 test)
        nyudepthv2_{train,test}_files_with_gt.txt  in ROOT, ROOT/splits, ROOT/data_splits,
                                                   ROOT/train_test_inputs or (where the released
                                                   code keeps it) ROOT/data_splits/nyudepthv2/
                                                   (optional)

    A split line is ``<rgb> <depth> <focal>`` relative to ``sync/`` (train) or
    ``official_splits/test/`` (test). Without a split file, every ``rgb_*`` image with its
    ``sync_depth_*.png`` partner is used. Training views of 480x640 frames keep ground truth
    only in rows 45:472, cols 43:608 (the released loader's border mask: the registration
    leaves blank borders); evaluation uses the Eigen crop.
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
        listing = find_split_file(root, (f"nyudepthv2_{split}_files_with_gt.txt",), self.protocol.data_splits)
        if listing is not None:
            for parts in split_lines(listing):
                if len(parts) < 2:
                    raise DataError(f"{listing}: line '{' '.join(parts)}' needs '<rgb> <depth> [focal]'.")
                self.samples.append(SampleRef(data / parts[0].lstrip("/"), data / parts[1].lstrip("/"), rel_name(parts[0])))
        else:
            for image in sorted(p for p in data.rglob("rgb_*") if p.suffix.lower() in IMAGE_EXTS):
                depth = image.with_name("sync_depth_" + image.stem[len("rgb_"):] + ".png")
                if depth.is_file():
                    self.samples.append(SampleRef(image, depth, rel_name(str(image.relative_to(data)))))
        self._require_samples(data)


class KittiDataset(DepthDataset):
    """KITTI with the Eigen split and the annotated depth maps (16-bit PNG / 256 metres)::

        ROOT/raw_data/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
        ROOT/data_depth_annotated/[train/|val/]2011_09_26_drive_0002_sync/proj_depth/
             groundtruth/image_02/0000000069.png
        eigen_{train,test}_files_with_gt.txt   in ROOT, ROOT/splits, ROOT/data_splits,
                                               ROOT/train_test_inputs or ROOT/data_splits/kitti/
                                               (required)

    A split line is ``<raw image> <annotated depth | None> <focal>``; lines without ground
    truth are skipped (the usual 652 of the 697 Eigen test frames remain). Both views take
    the 352x1216 KB crop of image AND ground truth first, as the released loader does;
    evaluation then scores the Garg crop of that 352x1216 frame.
    """

    def __init__(self, root: str | Path, split: str = "train", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        root = Path(root)
        super().__init__("kitti", split, _captions(root, "kitti", split, captions, default_caption), size, augment, 256.0)
        raw = next((root / d for d in ("raw_data", "raw", "kitti_raw") if (root / d).is_dir()), root)
        gt_root = root / "data_depth_annotated"
        names = (f"eigen_{split}_files_with_gt.txt", f"eigen_{split}_files.txt")
        listing = find_split_file(root, names, self.protocol.data_splits)
        if listing is None:
            raise DataError(
                f"No KITTI split file for '{split}': expected {names[0]} in {root} or its "
                f"{split_dirs_text(self.protocol.data_splits)} folder (the Eigen split lists of BTS)."
            )
        for parts in split_lines(listing):
            if len(parts) < 2 or parts[1] == "None":
                continue
            gt_rel = parts[1].lstrip("/")
            gt = next((c for c in (gt_root / gt_rel, gt_root / "train" / gt_rel, gt_root / "val" / gt_rel)
                       if c.is_file()), gt_root / gt_rel)
            self.samples.append(SampleRef(raw / parts[0].lstrip("/"), gt, rel_name(parts[0])))
        self._require_samples(listing)


class VoidDataset(DepthDataset):
    """VOID (void_release) with its list files (depth: 16-bit PNG / 256 metres)::

        ROOT/void_1500/{train,test}_image.txt          one image path per line, relative to ROOT
        ROOT/void_1500/{train,test}_ground_truth.txt   the matching ground-truth paths
        ROOT/void_1500/data/<sequence>/image/<t>.png, .../ground_truth/<t>.png

    The two list files may instead lie in ROOT/data_splits/void/ (where the released code
    keeps them).

    ``variant`` picks the sparse-density release (void_150, void_500, void_1500); the
    dense ground truth is the same in all three.
    """

    def __init__(self, root: str | Path, split: str = "train", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None, variant: str = "void_1500") -> None:
        root = Path(root)
        super().__init__("void", split, _captions(root, "void", split, captions, default_caption), size, augment, 256.0)
        images, gts = root / variant / f"{split}_image.txt", root / variant / f"{split}_ground_truth.txt"
        released = root / "data_splits" / "void"
        if not images.is_file() and (released / images.name).is_file():
            images, gts = released / images.name, released / gts.name
        for p in (images, gts):
            if not p.is_file():
                raise DataError(f"{p} does not exist; a VOID root holds {variant}/{split}_image.txt and "
                                f"{variant}/{split}_ground_truth.txt.")
        image_lines = [ln[0] for ln in split_lines(images)]
        gt_lines = [ln[0] for ln in split_lines(gts)]
        if len(image_lines) != len(gt_lines):
            raise DataError(f"{images} lists {len(image_lines)} images but {gts} lists {len(gt_lines)} depth maps.")
        for image, gt in zip(image_lines, gt_lines):
            self.samples.append(SampleRef(root / image, root / gt, rel_name(image)))
        self._require_samples(images)


class C3vdDataset(DepthDataset):
    """C3VD colonoscopy sequences (depth: 16-bit TIFF, value * 100 / 65535 millimetres)::

        ROOT/<sequence>/0000_color.png + 0000_depth.tiff      e.g. ROOT/cecum_t1_a/...
        <split>.txt   optional, in ROOT or ROOT/data_splits/c3vd/: one
                      '<sequence>/NNNN_color.png' per line

    Without a split file, 'test' and 'train' are the released split: the sequence folders
    sorted by name, those at positions 0, 2, 5, 9, 12, 16, 19, 21 are the test set (all
    their frames), the others train (the 22 sequences of C3VD give 8 test and 14 train
    sequences). A root with fewer sequences, or another split name, uses every frame.
    Like the released loader, the colour image is resized to 480x640 (PIL bilinear,
    antialiased) and the ground truth with nearest neighbours, so frames are scored at
    480x640. Depth stays in millimetres (0-100), as the released protocol evaluates it.
    Without a caption file a sample's caption is built from its sequence folder, as the
    released code does: "The image shows a medical scene of {part} with texture type {n}.".
    """

    depth_channel0 = True  # the released loader reads the depth with OpenCV's colour flag, channel 0

    def __init__(self, root: str | Path, split: str = "train", captions: CaptionSource | None = None,
                 size: tuple[int, int] | None = None, augment: AugmentConfig | None = None,
                 default_caption: str | None = None) -> None:
        root = Path(root)
        source = captions or CaptionSource(root / "text" / "c3vd" / split)
        super().__init__("c3vd", split, source, size, augment, 65535.0 / 100.0)
        self.default_caption = default_caption.strip() if default_caption else None
        listing = find_split_file(root, (f"{split}.txt",), self.protocol.data_splits)
        if listing is not None:
            colours = [root / ln[0] for ln in split_lines(listing)]
        else:
            colours = [c for seq in c3vd_split_sequences(root, split) for c in sorted(seq.glob("*_color.png"))]
        for colour in colours:
            depth = colour.with_name(colour.name.replace("_color.png", "_depth.tiff"))
            if not depth.is_file():
                raise DataError(f"No depth for {colour}: expected {depth.name} next to it.")
            self.samples.append(SampleRef(colour, depth, rel_name(str(colour.relative_to(root)))))
        self._require_samples(root)

    def caption_lines(self, index: int) -> list[str]:
        """The caption file's lines; without one, the released folder caption, then the default."""
        ref = self.samples[index]
        if not self.captions.has(ref.rel, index):
            caption = c3vd_caption(ref.image.parent.name) or self.default_caption
            if caption is not None:
                return [caption]
        return self.captions.lines(ref.rel, index)


C3VD_TEST_POSITIONS = (0, 2, 5, 9, 12, 16, 19, 21)  # released test sequences, in the sorted listing
C3VD_PARTS = {"cecum": "cecum", "desc": "descending colon", "sigmoid": "sigmoid colon",
              "trans": "transcending colon"}  # sic: the released wording for the transverse colon
C3VD_TEXTURES = {"1": "one", "2": "two", "3": "three", "4": "four"}


def c3vd_split_sequences(root: Path, split: str) -> list[Path]:
    """The sequence folders of ``split`` (released positions for test/train, else all), sorted."""
    sequences = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*_color.png")))
    if split not in ("train", "test"):
        return sequences
    if len(sequences) <= max(C3VD_TEST_POSITIONS):
        log.warning("%s holds %d C3VD sequences, fewer than the released layout's 22: split '%s' uses "
                    "every frame instead of the released test/train split.", root, len(sequences), split)
        return sequences
    test = [sequences[i] for i in C3VD_TEST_POSITIONS]
    return test if split == "test" else [s for s in sequences if s not in test]


def c3vd_caption(sequence: str) -> str | None:
    """The released caption of a C3VD sequence folder such as 'sigmoid_t3_b'; None if not of that form.

    The released code puts two spaces before "texture" (its texture strings start with one);
    CLIP's tokenizer collapses whitespace, so the tokens are the same as this single-spaced text.
    """
    parts = sequence.split("_")
    if len(parts) < 2 or parts[0] not in C3VD_PARTS or len(parts[1]) < 2 or parts[1][1] not in C3VD_TEXTURES:
        return None
    return f"The image shows a medical scene of {C3VD_PARTS[parts[0]]} with texture type {C3VD_TEXTURES[parts[1][1]]}."
