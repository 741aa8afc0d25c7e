import dataclasses

import pytest
import torch

from tr2m_edge.config import EncoderSpec, get_preset
from tr2m_edge.errors import ConfigError, ModelLoadError
from tr2m_edge.model import build_model, count_parameters, postprocess_depth
from tr2m_edge.model.encoders import build_depth_encoder, build_text_encoder, tokenize
from tr2m_edge.model.summary import parameter_counts


def test_tiny_model_forward_shapes_and_range(tiny_model, tiny_cfg):
    x = torch.randn(2, 3, *tiny_cfg.preprocess.input_size)
    emb = tiny_model.encode_text(["a wooden table", "a city street"])
    assert emb.shape == (2, tiny_cfg.head.text_dim)
    out = tiny_model(x, text_emb=emb, frame_size=(120, 160))
    assert out.depth.shape == (2, 1, 120, 160)
    assert out.scale.shape == out.shift.shape == out.relative.shape == (2, 1, 140, 182)
    assert out.depth.min() >= tiny_cfg.min_depth and out.depth.max() <= tiny_cfg.max_depth
    # Folded bias == reference cross-attention through the whole model.
    ref = tiny_model(x, text_emb=emb, frame_size=(120, 160), reference=True)
    torch.testing.assert_close(out.raw_depth, ref.raw_depth, rtol=1e-5, atol=1e-5)


def test_encoders_are_frozen_and_only_head_trains(tiny_model):
    trainable = {n.split(".")[0] for n, p in tiny_model.named_parameters() if p.requires_grad}
    assert trainable == {"head"}
    tiny_model.train()
    assert tiny_model.head.training
    assert not tiny_model.depth_encoder.training and not tiny_model.image_encoder.training
    assert not tiny_model.text_encoder.training
    tiny_model.eval()


def test_edge_shared_backbone_tokens_come_from_depth_backbone():
    tiny = get_preset("tiny")
    cfg = tiny.replace(image=None, head=dataclasses.replace(tiny.head, in_channels=32))
    model = build_model(cfg)
    assert model.image_encoder is None
    x = torch.randn(1, 3, 70, 98)
    rel, feats = model.encode_frame(x)
    assert feats.shape == (1, 5 * 7, 32)
    with torch.no_grad():
        hidden = model.depth_encoder.model.backbone(x, output_hidden_states=True).hidden_states[-1]
        expected = model.depth_encoder.model.backbone.layernorm(hidden)[:, 1:]
        # and the relative depth equals the stock transformers forward
        stock = model.depth_encoder.model(pixel_values=x).predicted_depth
    torch.testing.assert_close(feats, expected)
    torch.testing.assert_close(rel[:, 0], stock)


def test_width_mismatch_is_a_config_error():
    tiny = get_preset("tiny")
    with pytest.raises(ConfigError, match="image features are 32-d but head.in_channels is 48"):
        build_model(tiny.replace(image=None))


def test_missing_local_weights_name_the_source(tmp_path):
    spec = EncoderSpec("depth_anything", source=str(tmp_path / "no-such-model"))
    with pytest.raises(ModelLoadError, match="Could not load the Depth Anything model from '.*no-such-model'"):
        build_depth_encoder(spec)


def test_text_encoder_families_agree_on_shape_and_tokenizer():
    tokens = tokenize(["warehouse aisle", ""])
    assert tokens.shape == (2, 77) and tokens.dtype == torch.int64
    assert tokens[0, 0] == 49406  # start of text
    for family in ("open_clip", "hf_clip"):
        enc = build_text_encoder(EncoderSpec(family, hidden_size=32, num_layers=2, num_heads=2, embed_dim=64))
        assert enc(tokens).shape == (2, 64)
        assert not any(p.requires_grad for p in enc.parameters())


def test_open_clip_pools_the_end_of_text_token():
    enc = build_text_encoder(get_preset("tiny").text)
    a = tokenize(["a red chair"])
    b = a.clone()
    eot = int(a[0].argmax())
    b[0, eot + 1:] = 7  # tokens after the end-of-text token must not matter (causal mask)
    torch.testing.assert_close(enc(a), enc(b))


def test_postprocess_rules():
    d = torch.tensor([[[[float("inf"), float("nan")], [0.0, 5.0]]]])
    out = postprocess_depth(d, None, 0.01, 10.0)
    assert out.flatten().tolist() == pytest.approx([10.0, 0.01, 0.01, 5.0])
    up = postprocess_depth(torch.ones(1, 1, 2, 2), (4, 6), 0.01, 10.0)
    assert up.shape == (1, 1, 4, 6)


def test_parameter_counts_match_published_sizes():
    counts = parameter_counts(get_preset("paper"))
    assert counts["head (trainable)"] == 18_959_746
    assert abs(counts["depth"] - 24.79e6) / 24.79e6 < 0.001  # DA-S, TR2M_FACTS
    assert counts["image"] > 300e6  # DINOv2-L
    tiny = parameter_counts(get_preset("tiny"))
    model = build_model(get_preset("tiny"))
    assert tiny["head (trainable)"] == count_parameters(model.head)
