import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tr2m_edge.config import PreprocessConfig
from tr2m_edge.errors import InputError
from tr2m_edge.preprocess import clip_depth, preprocess_frame, preprocess_tensor, resize_bilinear


@pytest.mark.parametrize("frame_hw,input_size", [((480, 640), (434, 560)), ((37, 51), (70, 98)), ((140, 182), (140, 182)), ((300, 200), (14, 28))])
def test_numpy_equals_torch(frame_hw, input_size):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(*frame_hw, 3), dtype=np.uint8)
    cfg = PreprocessConfig(input_size=input_size)
    a = preprocess_frame(frame, cfg)
    b = preprocess_tensor(torch.from_numpy(frame).permute(2, 0, 1)[None], cfg).numpy()
    assert a.shape == b.shape == (1, 3, *input_size) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=0)


def test_resize_matches_torch_align_corners():
    x = np.random.default_rng(1).random((9, 13)).astype(np.float32)
    ours = resize_bilinear(x, (20, 7))
    ref = F.interpolate(torch.from_numpy(x)[None, None], size=(20, 7), mode="bilinear", align_corners=True)[0, 0]
    np.testing.assert_allclose(ours, ref.numpy(), atol=1e-6)
    # align_corners=True keeps the corner pixels exactly.
    assert ours[0, 0] == x[0, 0] and ours[-1, -1] == x[-1, -1]


def test_normalisation_hand_computed():
    frame = np.full((2, 2, 3), 255, dtype=np.uint8)
    out = preprocess_frame(frame, PreprocessConfig(input_size=(14, 14)))
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[0, :, 5, 5], expected, rtol=1e-6)


def test_grey_and_rgba_frames_are_accepted():
    cfg = PreprocessConfig(input_size=(14, 14))
    grey = np.zeros((20, 20), dtype=np.uint8)
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    assert preprocess_frame(grey, cfg).shape == preprocess_frame(rgba, cfg).shape == (1, 3, 14, 14)


@pytest.mark.parametrize("bad", [np.zeros((5, 5, 2), np.uint8), np.zeros((1, 5, 3), np.uint8), "image.png"])
def test_bad_frames(bad):
    with pytest.raises(InputError, match="must be"):
        preprocess_frame(bad, PreprocessConfig(input_size=(14, 14)))
    with pytest.raises(InputError, match=r"images must be \(B, 3, H, W\)"):
        preprocess_tensor(torch.zeros(3, 10, 10), PreprocessConfig(input_size=(14, 14)))


def test_clip_depth_rules():
    d = np.array([np.inf, np.nan, -np.inf, 0.0, 5.0, 100.0])
    out, bad = clip_depth(d, 0.001, 10.0)
    np.testing.assert_array_equal(out, [10.0, 0.001, 0.001, 0.001, 5.0, 10.0])
    assert bad == 3
