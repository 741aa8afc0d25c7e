"""Measure the released-model conventions this project follows, and what breaking each costs.

Random weights of the published architectures (no downloads), so the numbers show how far
each convention moves the model's tensors, not accuracy:

* text tower: QuickGELU vs nn.GELU (what open_clip's plain "ViT-L-14" builds), fp16 vs fp32;
* position embeddings: transformers' ``size=`` vs the original ``scale_factor=(g + 0.1) / 37``,
  on a smooth table, an i.i.d. table, DINOv2-L tokens and DA-S relative depth;
* preprocess: antialiased vs plain bilinear resize of a 1080p frame;
* the 16-bit PNG unit: pixels a millimetre PNG clips at an 80 m depth range;
* how fast a missing encoder fails with ``--offline`` and with an unreachable hub.

Depth differences go through a random paper-preset head (the released head's
architecture). Usage::

    python scripts/fidelity_check.py --out fidelity.json          # about 3 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from tr2m_edge.checkpoint import random_head_checkpoint
from tr2m_edge.config import PreprocessConfig, get_preset
from tr2m_edge.model.encoders import build_depth_encoder, build_image_encoder, build_text_encoder, tokenize
from tr2m_edge.model.head import build_head, metric_from_relative
from tr2m_edge.model.summary import random_encoder_config
from tr2m_edge.preprocess import preprocess_frame

CAPTIONS = ["a photo of a warehouse aisle with shelves", "a cobbled street with two vans and a tree",
            "a small wooden tabletop with two mugs", "an office with desks and chairs"]
INPUT = (434, 560)


def rel_rms(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """RMS(a - b) / RMS(b)."""
    a, b = torch.as_tensor(np.asarray(a, np.float64)), torch.as_tensor(np.asarray(b, np.float64))
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


def transformers_table(table: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """transformers' Dinov2Embeddings convention: bicubic to size=(gh, gw)."""
    grid = table[:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
    return torch.cat((table[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, table.shape[-1])), dim=1)


@contextlib.contextmanager
def transformers_convention(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model``'s DINOv2 embeddings with transformers' size= interpolation (the 'before')."""
    mods = [m for m in model.modules() if getattr(type(m), "original_position_interpolation", False)]

    def size_based(self, embeddings, height, width):  # noqa: ANN001, ANN202
        return transformers_table(self.position_embeddings, height // 14, width // 14)

    for m in mods:
        m.interpolate_pos_encoding = size_based.__get__(m)
    try:
        yield
    finally:
        for m in mods:
            del m.interpolate_pos_encoding


def smooth_table(dim: int = 1024, seed: int = 0) -> torch.Tensor:
    """(1, 1 + 37*37, dim) sums of low-frequency 2-D sinusoids (a trained table is smooth)."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 37), torch.linspace(0, 1, 37), indexing="ij")
    f = torch.randint(0, 4, (2, dim), generator=gen).float()
    phase = torch.rand(2, dim, generator=gen) * 6.283
    grid = torch.sin(6.283 * f[0] * yy[..., None] + phase[0]) * torch.cos(6.283 * f[1] * xx[..., None] + phase[1])
    return torch.cat((torch.zeros(1, 1, dim), grid.reshape(1, -1, dim)), dim=1)


def position_checks(paper, image, depth) -> dict[str, float]:  # noqa: ANN001
    gh, gw = INPUT[0] // 14, INPUT[1] // 14
    out: dict[str, float] = {}
    from tr2m_edge.model.pos_embed import interpolate_position_table

    for name, table in (("smooth_table", smooth_table()), ("iid_table", torch.randn(1, 1 + 37 * 37, 1024))):
        orig = interpolate_position_table(table, gh, gw)
        out[f"{name}_rel_rms"] = rel_rms(transformers_table(table, gh, gw)[:, 1:], orig[:, 1:])
    x = torch.from_numpy(preprocess_frame(frame_1080p()[::2, ::2], paper.preprocess))
    with torch.no_grad():
        after = image(x)
        rel_after = depth(x)[0]
        with transformers_convention(image), transformers_convention(depth):
            before = image(x)
            rel_before = depth(x)[0]
    out["dinov2_tokens_rel_rms"] = rel_rms(before, after)
    out["da_s_relative_depth_rel_rms"] = rel_rms(rel_before, rel_after)
    return out


def frame_1080p() -> np.ndarray:
    """A 1080x1920 synthetic room: textures, edges, fine detail (uint8 RGB)."""
    from tr2m_edge.synthetic.render import render_scene

    if not hasattr(frame_1080p, "cache"):
        frame_1080p.cache = render_scene(7, size=(1080, 1920), family="room").rgb  # type: ignore[attr-defined]
    return frame_1080p.cache  # type: ignore[attr-defined]


def text_checks(paper, head, rel, feats) -> dict[str, float]:  # noqa: ANN001
    """QuickGELU vs GELU and fp16 vs fp32 at the published ViT-L/14 text size (random weights)."""
    import open_clip

    spec = random_encoder_config(paper).text
    quick = build_text_encoder(spec)
    gelu = build_text_encoder(spec)
    for block in gelu.model.transformer.resblocks:  # the same weights, nn.GELU (open_clip "ViT-L-14")
        block.mlp.gelu = torch.nn.GELU()
    assert isinstance(quick.model.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    tokens = tokenize(CAPTIONS)
    with torch.no_grad():
        e_quick, e_gelu = quick(tokens).float(), gelu(tokens).float()
        e_half = quick.at_precision("fp16")(tokens).float()

        def depth_of(emb: torch.Tensor) -> torch.Tensor:
            grid = (INPUT[0] // 14, INPUT[1] // 14)
            maps = [metric_from_relative(*head.forward_frame(feats, head.scene_bias(e[None]), grid)[:2], rel)
                    for e in emb]
            return torch.cat(maps).clamp(paper.min_depth, paper.max_depth)

        d_quick, d_gelu, d_half = depth_of(e_quick), depth_of(e_gelu), depth_of(e_half)
    return {
        "gelu_vs_quickgelu_text_rel_rms": rel_rms(e_gelu, e_quick),
        "gelu_vs_quickgelu_depth_rel_rms": rel_rms(d_gelu, d_quick),
        "fp16_vs_fp32_text_rel_rms": rel_rms(e_half, e_quick),
        "fp16_vs_fp32_depth_rel_rms": rel_rms(d_half, d_quick),
    }


def resize_checks(depth) -> dict[str, float]:  # noqa: ANN001
    frame = frame_1080p()
    cfg = PreprocessConfig(input_size=INPUT)
    plain = preprocess_frame(frame, cfg)
    aa = preprocess_frame(frame, dataclasses.replace(cfg, resize="antialias"))
    std = np.asarray(cfg.std, np.float32).reshape(1, 3, 1, 1)
    with torch.no_grad():
        d_plain, d_aa = depth(torch.from_numpy(plain))[0], depth(torch.from_numpy(aa))[0]
    return {
        "antialias_vs_bilinear_input_mean_abs_255": float(np.abs((aa - plain) * std).mean() * 255),
        "antialias_vs_bilinear_input_max_abs_255": float(np.abs((aa - plain) * std).max() * 255),
        "antialias_vs_bilinear_input_rel_rms": rel_rms(aa, plain),
        "antialias_vs_bilinear_da_s_relative_depth_rel_rms": rel_rms(d_aa, d_plain),
    }


def png_checks() -> dict[str, float]:
    from tr2m_edge.runtime.sinks.files import png_clipped

    depth = np.random.default_rng(0).uniform(1.0, 80.0, (480, 640))  # a street at the 80 m range
    return {"png_mm_clipped_fraction_uniform_1_80m": png_clipped(depth) / depth.size,
            "png_cm_clipped_fraction_uniform_1_80m": png_clipped(depth, 100.0) / depth.size}


def offline_checks() -> dict[str, float]:
    """Seconds until a missing encoder fails: --offline, and an unreachable hub (empty cache)."""
    import os
    import tempfile

    import huggingface_hub.constants as constants

    from tr2m_edge.errors import ModelLoadError
    from tr2m_edge.model import hub

    paper = get_preset("paper")
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        saved = constants.HF_HUB_CACHE, os.environ.get("HOME"), os.environ.get("HF_ENDPOINT")
        constants.HF_HUB_CACHE, os.environ["HOME"] = tmp, tmp  # nothing cached, whatever this machine holds
        try:
            for mode in ("offline", "unreachable"):
                hub.set_offline(mode == "offline")
                if mode == "unreachable":
                    os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # refused at once; a firewalled hub waits 1.5 s
                    hub._probe.cache_clear()
                for name, build, spec in (("depth", build_depth_encoder, dataclasses.replace(
                        paper.depth, source="tr2m-edge-check/no-such-model")), ("text", build_text_encoder, paper.text)):
                    start = time.perf_counter()
                    try:
                        build(spec)
                    except ModelLoadError:
                        out[f"missing_{name}_model_{mode}_s"] = time.perf_counter() - start
        finally:
            hub.set_offline(False)
            constants.HF_HUB_CACHE = saved[0]
            for var, value in (("HOME", saved[1]), ("HF_ENDPOINT", saved[2])):
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="Also write the results as JSON here.")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    start = time.perf_counter()
    paper = random_encoder_config(get_preset("paper"))
    depth = build_depth_encoder(paper.depth)
    image = build_image_encoder(paper.image)
    head = build_head(paper, random_head_checkpoint(paper).head).eval()
    x = torch.from_numpy(preprocess_frame(frame_1080p(), paper.preprocess))
    rel, _ = depth(x)
    feats = image(x)
    results = {**position_checks(paper, image, depth), **text_checks(paper, head, rel, feats),
               **resize_checks(depth), **png_checks(), **offline_checks(), "seconds": round(time.perf_counter() - start, 1)}
    for key, value in results.items():
        print(f"{key:55s} {value:.4g}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
