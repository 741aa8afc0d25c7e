"""The demo's text tower: a bag-of-words objective, deterministic, loadable as an encoder spec."""

from __future__ import annotations

from pathlib import Path

import torch

from tr2m_edge.demo.text_encoder import TextStageConfig, bag_of_words, text_spec, train_text_encoder


def test_bag_of_words_marks_the_vocabulary_tokens_of_each_caption():
    tokens = torch.tensor([[49406, 5, 7, 49407, 0], [49406, 7, 7, 49407, 0]])
    out = bag_of_words(tokens, [5, 7, 9])
    assert out.tolist() == [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]


def test_training_is_deterministic_and_the_tower_loads_with_new_content(tmp_path: Path) -> None:
    from tr2m_edge.model.encoders import build_text_encoder, tokenize

    captions = ["a small tabletop with a mug", "a living room with a sofa", "a wide city street with cars"]
    cfg = TextStageConfig(steps=4, batch_size=4)
    first = train_text_encoder(captions, cfg, tmp_path / "a")
    train_text_encoder(captions, cfg, tmp_path / "b")
    assert first["vocabulary"] > 6 and first["captions"] == 3
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    trained, random = build_text_encoder(text_spec(tmp_path / "a")), build_text_encoder(cfg.spec())
    with torch.no_grad():
        ids = tokenize(captions)
        a, b = trained.model(input_ids=ids).text_embeds, random.model(input_ids=ids).text_embeds
    assert a.shape == b.shape == (3, cfg.spec().embed_dim) and not torch.allclose(a, b)
