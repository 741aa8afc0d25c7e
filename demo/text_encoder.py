"""The demo's text encoder: a tiny CLIP text tower that represents what a caption says.

TR2M reads a frozen, pretrained CLIP text embedding. The ``tiny`` preset's text tower is
random, and a random tower scrambles its caption: on unseen captions the family of the
scene cannot be read back from the embedding (77 % nearest-centroid accuracy on the
validation captions, and no regression of the scene's depth from it generalises), so
neither TR2M nor the text-only baseline could learn scale from text.

So, like stage 0 on the image side, the demo first gives the text side generic content:
the same tiny tower (``CLIPTextModelWithProjection``, the tiny preset's sizes and seed,
built as :func:`tr2m_edge.model.encoders.build_text_encoder` builds a random one) is
trained to tell, from its pooled embedding alone, which words a caption contains (a
bag-of-words decoder with a binary cross-entropy, thrown away afterwards). It never sees
an image or a depth: what a scale word means is left for TR2M (and the baseline) to learn.
Deterministic on the CPU; saved with ``save_pretrained``; loaded through
``EncoderSpec("hf_clip", source=DIR)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tr2m_edge.config import EncoderSpec, get_preset
from tr2m_edge.demo.stage0 import deterministic_cpu
from tr2m_edge.errors import ConfigError
from tr2m_edge.model.encoders import build_text_encoder, tokenize

SPECIAL = (0, 49406, 49407)  # padding, start and end of text: not words
RECORD = "text_encoder.json"


@dataclass(frozen=True)
class TextStageConfig:
    """Training of the demo's text tower (its sizes are the tiny preset's)."""

    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.threads) < 1 or self.lr <= 0:
            raise ConfigError("The text stage needs steps, batch_size, threads >= 1 and lr > 0.")

    def spec(self) -> EncoderSpec:
        """The random tower it starts from: the tiny preset's text sizes and seed, as a transformers CLIP."""
        tiny = get_preset("tiny").text
        return EncoderSpec("hf_clip", hidden_size=tiny.hidden_size, num_layers=tiny.num_layers,
                           num_heads=tiny.num_heads, embed_dim=tiny.embed_dim, seed=tiny.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def bag_of_words(tokens: torch.Tensor, vocab: Sequence[int]) -> torch.Tensor:
    """(N, 77) token ids -> (N, len(vocab)) float 0/1: which vocabulary tokens each caption holds."""
    index = {v: i for i, v in enumerate(vocab)}
    out = torch.zeros(len(tokens), len(vocab))
    for i, row in enumerate(tokens.tolist()):
        for v in row:
            if v in index:
                out[i, index[v]] = 1.0
    return out


def train_text_encoder(captions: Sequence[str], cfg: TextStageConfig, out_dir: str | Path) -> dict[str, Any]:
    """Train the tower on ``captions`` (bag-of-words objective) and save it to ``out_dir``.

    Returns the record written to ``out_dir/text_encoder.json`` (config, vocabulary size,
    final loss, time).
    """
    if not captions:
        raise ConfigError("The text stage needs at least one caption.")
    t0 = time.perf_counter()
    with deterministic_cpu(cfg.threads):
        encoder = build_text_encoder(cfg.spec())
        model = encoder.model.train()
        for p in model.parameters():
            p.requires_grad_(True)
        tokens = tokenize(list(captions))
        # tokens after the end-of-text token cannot change the pooled (end-of-text) output under
        # CLIP's causal mask: train on the used length only (same outputs, ~2x faster)
        length = int((tokens != 0).sum(1).max())
        tokens = tokens[:, :length]
        vocab = sorted(set(tokens.flatten().tolist()) - set(SPECIAL))
        targets = bag_of_words(tokens, vocab)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            decoder = torch.nn.Linear(cfg.spec().embed_dim, len(vocab))
        params = list(model.parameters()) + list(decoder.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        rng = np.random.default_rng([cfg.seed, 0x7E47])
        losses = []
        for _ in range(cfg.steps):
            idx = torch.from_numpy(rng.integers(0, len(tokens), cfg.batch_size))
            logits = decoder(model(input_ids=tokens[idx]).text_embeds)
            loss = F.binary_cross_entropy_with_logits(logits, targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    record = {"format": "tr2m-edge/demo-text-encoder", "config": cfg.to_dict(), "spec": dataclasses.asdict(cfg.spec()),
              "captions": len(captions), "vocabulary": len(vocab),
              "captions_sha256": hashlib.sha256("\n".join(captions).encode()).hexdigest(),
              "final_loss": float(np.mean(losses[-20:])), "seconds": round(time.perf_counter() - t0, 1)}
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def text_spec(folder: str | Path) -> EncoderSpec:
    """The trained tower as an encoder spec (a local transformers directory)."""
    return dataclasses.replace(TextStageConfig().spec(), source=str(Path(folder).resolve()))
