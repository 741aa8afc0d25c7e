"""Encoders from disk or hub: local folders / weight files load, configs record them, and a
missing model fails fast and offline-safe with the flag to use."""

from __future__ import annotations

import time

import pytest
import torch

from tr2m_edge.config import EncoderSpec, get_preset
from tr2m_edge.errors import ConfigError, ModelLoadError
from tr2m_edge.model import build_model, hub
from tr2m_edge.model.encoder_sources import EncoderSources, with_encoder_sources
from tr2m_edge.model.encoders import build_depth_encoder, build_image_encoder, build_text_encoder, tokenize


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_model):
    """The tiny model's encoders written as a user would have them on disk."""
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    root = tmp_path_factory.mktemp("encoders")
    tiny_model.depth_encoder.model.save_pretrained(root / "depth")
    tiny_model.image_encoder.model.save_pretrained(root / "dino")
    text = {k: v for k, v in tiny_model.text_encoder.model.state_dict().items() if not k.startswith("visual.")}
    torch.save(text, root / "text_tower.pt")  # an open_clip text-tower state dict
    (root / "bare").mkdir()
    save_file({k: v.contiguous() for k, v in tiny_model.depth_encoder.model.state_dict().items()},
              str(root / "bare" / "depth.safetensors"))  # a weight file without config.json
    torch.manual_seed(3)
    hf = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, projection_dim=64, hidden_act="quick_gelu", bos_token_id=49406,
        eos_token_id=49407, pad_token_id=0)).eval()
    hf.save_pretrained(root / "hf_text")
    return root, hf


def test_local_encoders_load_the_saved_weights(saved, tiny_model):
    root, _ = saved
    cfg = with_encoder_sources(get_preset("tiny"), EncoderSources(
        depth=str(root / "depth"), image=str(root / "dino"), text=str(root / "text_tower.pt")))
    assert cfg.depth.source == str(root / "depth") and cfg.image.source == str(root / "dino")
    assert (cfg.text.family, cfg.text.source, cfg.text.pretrained) == ("open_clip", None, str(root / "text_tower.pt"))
    model = build_model(cfg)
    x = torch.randn(1, 3, 140, 182)
    tokens = tokenize(["warehouse aisle"])
    with torch.no_grad():
        for got, want in zip(model.encode_frame(x), tiny_model.encode_frame(x)):
            assert torch.equal(got, want)
        assert torch.equal(model.encode_text(tokens), tiny_model.encode_text(tokens))


def test_bare_weight_file_is_built_with_the_replaced_encoders_sizes(saved, tiny_model):
    root, _ = saved
    spec = with_encoder_sources(get_preset("tiny"), EncoderSources(depth=str(root / "bare" / "depth.safetensors"))).depth
    x = torch.randn(1, 3, 140, 182)
    with torch.no_grad():
        assert torch.equal(build_depth_encoder(spec)(x)[0], tiny_model.depth_encoder(x)[0])
    wrong = EncoderSpec("depth_anything", source=spec.source, hidden_size=64, num_layers=4, num_heads=2)
    with pytest.raises(ModelLoadError, match=r"does not fit the Depth Anything model: .*mis-shaped"):
        build_depth_encoder(wrong)


def test_hf_clip_folder_becomes_the_text_tower(saved):
    root, hf = saved
    spec = with_encoder_sources(get_preset("tiny"), EncoderSources(text=str(root / "hf_text"))).text
    assert (spec.family, spec.source) == ("hf_clip", str(root / "hf_text"))
    tokens = tokenize(["a kitchen"])
    with torch.no_grad():
        # same weights; from_pretrained may pick another attention kernel (measured 3.6e-7 apart)
        torch.testing.assert_close(build_text_encoder(spec)(tokens), hf(input_ids=tokens).text_embeds,
                                   atol=1e-5, rtol=1e-5)


def test_text_model_forms():
    text = get_preset("paper").text
    assert with_encoder_sources(get_preset("paper"), EncoderSources(text="ViT-L-14-quickgelu:openai")).text == text
    spec = with_encoder_sources(get_preset("paper"), EncoderSources(text="openai/clip-vit-large-patch14")).text
    assert (spec.family, spec.source, spec.pretrained) == ("hf_clip", "openai/clip-vit-large-patch14", None)
    with pytest.raises(ConfigError, match="--image-model does not apply to preset 'edge'"):
        with_encoder_sources(get_preset("edge"), EncoderSources(image="facebook/dinov2-large"))


@pytest.fixture()
def offline(monkeypatch, tmp_path):
    """--offline, with an empty Hugging Face cache and home (so no machine's cache can answer)."""
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.cache/clip, open_clip's URL cache
    hub.set_offline(True)  # undone by the autouse _hub_mode fixture


MISSING = "tr2m-edge-test/no-such-model"  # a hub id no cache holds


@pytest.mark.parametrize("build,spec,flag,expected", [
    (build_depth_encoder, EncoderSpec("depth_anything", source=MISSING), "--depth-model", MISSING),
    (build_image_encoder, EncoderSpec("dinov2", source=MISSING), "--image-model", MISSING),
    (build_text_encoder, get_preset("paper").text, "--text-model", "timm/vit_large_patch14_clip_224.openai"),
])
def test_offline_missing_model_fails_fast_naming_the_flag(offline, capfd, build, spec, flag, expected):
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as info:
        build(spec)
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert elapsed < 5.0, elapsed  # measured 0.003-0.011 s; the bound asked for is 2 s
    assert "\n" not in message and flag in message and f"'{expected}'" in message and "--offline" in message
    out = capfd.readouterr()
    assert "Retry" not in out.err + out.out  # no hub retry spam


def test_unreachable_hub_fails_fast_without_offline(monkeypatch):
    hub.set_offline(False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    hub._probe.cache_clear()
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"'tr2m-edge-test/no-such-model' is not in the local Hugging Face "
                                             r"cache .* is not reachable .*--image-model DIR"):
        build_image_encoder(EncoderSpec("dinov2", source="tr2m-edge-test/no-such-model"))
    assert time.perf_counter() - start < 5.0
    hub._probe.cache_clear()


def test_openai_style_torchscript_archive_loads(tmp_path):
    """OpenAI's ViT-L-14.pt (what the released code's clip.load caches) is a TorchScript archive
    of the whole CLIP; here a traced tiny CLIP stands in for it."""
    import warnings

    from tr2m_edge.model.encoders import _random_open_clip
    from tr2m_edge.model.loaders import is_torchscript

    spec = get_preset("tiny").text
    full = _random_open_clip(spec).eval()
    tokens = tokenize(["a tram stop"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(full, (torch.randn(1, 3, 28, 28), tokens), check_trace=False).save(str(tmp_path / "clip.pt"))
    assert is_torchscript(tmp_path / "clip.pt")
    loaded = build_text_encoder(with_encoder_sources(get_preset("tiny"), EncoderSources(text=str(tmp_path / "clip.pt"))).text)
    with torch.no_grad():
        assert torch.equal(loaded(tokens), full.encode_text(tokens))
