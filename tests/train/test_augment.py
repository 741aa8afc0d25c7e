"""Training augmentations: applied consistently to image, depth and caption."""

from __future__ import annotations

import numpy as np
import pytest

from tr2m_edge.errors import ConfigError
from tr2m_edge.train.augment import AugmentConfig, augment_sample, swap_sides


def _sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((4, 6, 3), dtype=np.float32) * 0.5, rng.random((4, 6), dtype=np.float32) + 1.0


def test_swap_sides_keeps_case_and_suffixes() -> None:
    assert swap_sides("a wall on the left, a car on the Right") == "a wall on the right, a car on the Left"
    assert swap_sides("LEFT and leftmost, not leftover") == "RIGHT and rightmost, not leftover"


def test_flip_mirrors_image_depth_and_caption_together() -> None:
    image, depth = _sample()
    cfg = AugmentConfig(flip_p=1.0, photometric_p=0.0)
    img2, dep2, cap2 = augment_sample(image, depth, "a shelf on the left", cfg, np.random.default_rng(1))
    assert np.array_equal(img2, image[:, ::-1]) and np.array_equal(dep2, depth[:, ::-1])
    assert cap2 == "a shelf on the right"


def test_photometric_change_touches_the_image_only() -> None:
    image, depth = _sample()
    cfg = AugmentConfig(flip_p=0.0, photometric_p=1.0, gamma=(2.0, 2.0), brightness=(1.5, 1.5), colour=(1.0, 1.0))
    img2, dep2, cap2 = augment_sample(image, depth, "on the left", cfg, np.random.default_rng(1))
    assert np.allclose(img2, np.clip(image ** 2 * 1.5, 0, 1), atol=1e-6)
    assert np.array_equal(dep2, depth) and cap2 == "on the left"


def test_paper_ranges_and_seeded_draws() -> None:
    image, depth = _sample()
    cfg = AugmentConfig()
    a = augment_sample(image, depth, "x", cfg, np.random.default_rng(5))
    b = augment_sample(image, depth, "x", cfg, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    flips = sum(np.array_equal(augment_sample(image, depth, "x", cfg, np.random.default_rng(s))[1], depth[:, ::-1])
                for s in range(200))
    assert 70 < flips < 130  # p = 0.5
    ratios = []
    for s in range(200):  # brightness x colour stays within the paper's ranges (gamma aside)
        out = augment_sample(image, depth, "x", AugmentConfig(flip_p=0, photometric_p=1, gamma=(1, 1)),
                             np.random.default_rng(s))[0]
        ratios.append(out / image)
    r = np.stack(ratios)
    assert r.min() >= 0.9 * 0.9 - 1e-5 and r.max() <= 1.1 * 1.1 + 1e-5


def test_invalid_ranges_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"augment.flip_p must lie in \[0, 1\]; got 1.5"):
        AugmentConfig(flip_p=1.5)
    with pytest.raises(ConfigError, match=r"augment.gamma must be a range"):
        AugmentConfig(gamma=(1.2, 1.1))
