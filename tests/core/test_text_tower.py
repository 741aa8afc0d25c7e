"""The text tower the released model used: OpenAI CLIP ViT-L/14 with QuickGELU, optionally fp16."""

from __future__ import annotations

import dataclasses

import open_clip
import pytest
import torch

from tr2m_edge.config import EncoderSpec, get_preset
from tr2m_edge.errors import ConfigError
from tr2m_edge.model.encoders import build_text_encoder, text_activation, tokenize
from tr2m_edge.model.loaders import open_clip_architecture

TINY_TEXT = EncoderSpec("open_clip", hidden_size=32, num_layers=2, num_heads=2, embed_dim=64)


@pytest.mark.parametrize("preset", ["paper", "edge"])
def test_paper_and_edge_text_towers_are_quickgelu(preset):
    spec = get_preset(preset).text
    assert (spec.family, spec.source, spec.pretrained) == ("open_clip", "ViT-L-14-quickgelu", "openai")
    with torch.device("meta"):  # the architecture the loader builds for that name, without weights
        tower = open_clip_architecture(spec.source)
    assert type(tower.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    with torch.device("meta"):
        plain = open_clip_architecture("ViT-L-14")  # open_clip 3.x: nn.GELU even for the OpenAI weights
    assert isinstance(plain.transformer.resblocks[0].mlp.gelu, torch.nn.GELU)


def test_random_and_hf_text_towers_are_quickgelu():
    assert text_activation(build_text_encoder(TINY_TEXT)) == "quick_gelu"
    assert text_activation(build_text_encoder(dataclasses.replace(TINY_TEXT, family="hf_clip"))) == "quick_gelu"


def test_quickgelu_is_what_the_activation_computes():
    x = torch.linspace(-4, 4, 9)
    assert torch.allclose(open_clip.transformer.QuickGELU()(x), x * torch.sigmoid(1.702 * x))


def test_fp16_text_tower_runs_half_with_fp32_layernorm():
    fp32 = build_text_encoder(TINY_TEXT)
    fp16 = build_text_encoder(dataclasses.replace(TINY_TEXT, precision="fp16"))
    assert fp16.precision == "fp16" and fp32.precision == "fp32"
    norms = [m for m in fp16.modules() if isinstance(m, torch.nn.LayerNorm)]
    linears = [m for m in fp16.modules() if isinstance(m, torch.nn.Linear)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)
    assert linears and all(m.weight.dtype == torch.float16 for m in linears)
    tokens = tokenize(["a photo of a warehouse aisle", "a street at night"])
    with torch.no_grad():
        a, b = fp32(tokens).float(), fp16(tokens)
    assert b.dtype == torch.float16
    rel = float(((b.float() - a) ** 2).mean().sqrt() / (a ** 2).mean().sqrt())
    assert 0 < rel < 1e-2  # fp16 rounding: small but real
    again = fp32.at_precision("fp16")  # conversion of an fp32 tower gives the same fp16 embedding
    with torch.no_grad():
        assert torch.equal(again(tokens), b)
    assert fp32.at_precision("fp32") is fp32


def test_fp16_is_for_text_encoders_only():
    with pytest.raises(ConfigError, match="precision 'fp16' is not available for 'dinov2'"):
        EncoderSpec("dinov2", hidden_size=8, num_layers=1, num_heads=1, precision="fp16")
    with pytest.raises(ConfigError, match="precision 'bf16'"):
        dataclasses.replace(TINY_TEXT, precision="bf16")


def test_paper_and_edge_depth_range_fits_the_released_training_data():
    for name in ("paper", "edge"):
        cfg = get_preset(name)
        assert (cfg.min_depth, cfg.max_depth) == (1e-3, 80.0)
