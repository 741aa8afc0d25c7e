"""The frame preprocessor as a module: one definition for the exported graph and the torch runner."""

from __future__ import annotations

import torch
from torch import nn

from tr2m_edge.config import PreprocessConfig
from tr2m_edge.preprocess import resize_normalise


class FramePreprocessor(nn.Module):
    """uint8 RGB frame (H, W, 3) -> normalised image (1, 3, h, w) float32.

    The steps of :func:`tr2m_edge.preprocess.preprocess_tensor`, with mean and std held as
    buffers: built per call they would be pageable host->device copies, which CUDA graph
    capture refuses. Used as the exported ``preprocess`` graph and by the torch runner.
    """

    def __init__(self, cfg: PreprocessConfig) -> None:
        super().__init__()
        self.input_size = tuple(cfg.input_size)
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return resize_normalise(frame.permute(2, 0, 1).unsqueeze(0), self.input_size, self.mean, self.std,
                                always_resize=True)
