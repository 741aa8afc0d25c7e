"""MAC accounting (tr2m_edge/model/macs.py) against hand counts and a real-weights run."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from tr2m_edge.config import get_preset
from tr2m_edge.model import build_model
from tr2m_edge.model.macs import count_macs


def test_per_component_counts_of_the_tiny_preset():
    cfg = get_preset("tiny")
    count = count_macs(cfg)
    assert set(count.per_frame) == {"preprocess", "depth", "image_encoder", "head"}
    assert set(count.per_caption) == {"text_encoder", "scene_bias"}
    c, d = cfg.head.in_channels, cfg.head.text_dim
    # scene bias = align_mlp (d -> c) + the value projection and out_proj of the one-token attention (c -> c each)
    assert count.per_caption["scene_bias"] == d * c + 2 * c * c
    assert count.frame_total == sum(count.per_frame.values())
    assert count.ratio_to_depth == count.frame_total / count.per_frame["depth"] > 1


def test_meta_device_counts_equal_a_real_weights_run():
    cfg = get_preset("tiny")
    count = count_macs(cfg, input_size=(98, 126))
    model = build_model(cfg.replace(input_size=(98, 126))).eval()
    # The CPU's fused attention kernel is not seen by the operator counter; eager attention
    # (the same math as batched matmuls, as on the meta device) is.
    model.depth_encoder.model.set_attn_implementation("eager")
    image = torch.rand(1, 3, 98, 126)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.components((98, 126))["depth"](image)
    assert count.per_frame["depth"] == counter.get_total_flops() // 2
    assert count.input_size == (98, 126)


def test_counts_grow_with_the_input_size():
    small, large = count_macs(get_preset("tiny"), (70, 98)), count_macs(get_preset("tiny"), (140, 196))
    assert large.per_frame["head"] > 3.5 * small.per_frame["head"]  # 4x the pixels; attention grows faster
    assert large.per_caption == small.per_caption  # captions do not depend on the frame
