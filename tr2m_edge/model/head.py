"""The TR2M rescale head ("ScaleMapModel"): text-conditioned per-pixel scale and shift.

Paper: Cui et al., "TR2M: Transferring Monocular Relative Depth to Metric Depth with
Language Descriptions and Scale-Oriented Contrast", CVPR 2026 (arXiv 2506.13387).

Given image tokens F_I (B, N, C) and a text embedding t (B, text_dim), the head predicts
A and B (B, 1, 14h, 14w); metric depth is ``1 / (A * D_r + B)``.

The cross-attention has exactly one key/value token, so its softmax weight is 1 and its
output is ``out_proj(W_v ln_text(align_mlp(t)) + b_v)`` for every query: a per-scene
constant. :meth:`ScaleMapHead.scene_bias` computes it once per caption and
:meth:`ScaleMapHead.forward_frame` consumes it; :meth:`ScaleMapHead.forward_reference`
runs the full attention and is kept as the reference the folded path is tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tr2m_edge.config import PATCH_SIZE, HeadConfig, ModelConfig
from tr2m_edge.errors import CheckpointError


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), as in CLIP."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class LayerNormFp32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (fp16/AMP safe)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
        return out.to(x.dtype)


class AlignMLP(nn.Module):
    """Maps the text embedding into the image-token width: Linear + QuickGELU."""

    def __init__(self, text_dim: int, width: int) -> None:
        super().__init__()
        self.a_fc = nn.Linear(text_dim, width)
        self.act = QuickGELU()

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.act(self.a_fc(t))


class TokenMLP(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class CrossAttentionBlock(nn.Module):
    """One pre-LN block: self-attention, one-token cross-attention, MLP (sequence-first)."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.attn_cross = nn.MultiheadAttention(width, heads)
        self.ln_1 = LayerNormFp32(width)
        self.ln_2 = LayerNormFp32(width)
        self.ln_text = LayerNormFp32(width)
        self.ln_visual = LayerNormFp32(width)
        self.mlp = TokenMLP(width, width * mlp_ratio)

    def self_attention(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, B, C) -> x + SelfAttn(ln_1(x))."""
        y = self.ln_1(x)
        return x + self.attn(y, y, y, need_weights=False)[0]

    def scene_bias(self, text_tokens: torch.Tensor) -> torch.Tensor:
        """Cross-attention output for a single key/value token, (B, C) -> (B, C).

        With one key the softmax weight is exactly 1, so the output is the value
        projection of ln_text(t) followed by out_proj, independent of the query.
        """
        width = text_tokens.shape[-1]
        w_v = self.attn_cross.in_proj_weight[2 * width:]
        b_v = self.attn_cross.in_proj_bias[2 * width:]
        v = F.linear(self.ln_text(text_tokens), w_v, b_v)
        return self.attn_cross.out_proj(v)

    def forward_folded(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """x: (N, B, C), bias: (B, C) from :meth:`scene_bias`."""
        x = self.self_attention(x)
        x = x + bias.unsqueeze(0).to(x.dtype)
        return x + self.mlp(self.ln_2(x))

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Reference path. x: (N, B, C) image tokens, text: (1, B, C) aligned text token."""
        x = self.self_attention(x)
        q = self.ln_visual(x)
        kv = self.ln_text(text)
        x = x + self.attn_cross(q, kv, kv, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class ResidualConvUnit(nn.Module):
    """ReLU -> conv3x3 -> ReLU -> conv3x3, plus the input (no normalisation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(x))
        y = self.conv2(F.relu(y))
        return x + y


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)


class ScaleMapHead(nn.Module):
    """Image tokens + text -> per-pixel scale A and shift B at the network input size."""

    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, dc = cfg.in_channels, cfg.decoder_channels
        self.align_mlp = AlignMLP(cfg.text_dim, c)
        self.crossattn = CrossAttentionBlock(c, cfg.num_heads, cfg.mlp_ratio)
        self.projects = nn.Conv2d(c, cfg.project_channels, 1)
        self.resize_layers = nn.ConvTranspose2d(cfg.project_channels, cfg.project_channels, 2, stride=2)
        self.layer1_rn = nn.Conv2d(cfg.project_channels, dc, 3, padding=1, bias=False)
        # The trunk doubles the 2x-upsampled token grid ``ups`` times: twice as released (to 8x the
        # grid, refined to full input size by the per-map heads); fewer for a coarser output_stride.
        self.ups = {1: 2, 2: 2, 4: 1, 8: 0}[cfg.output_stride]
        if self.ups >= 1:
            self.resConfUnit1 = ResidualConvUnit(dc)
            self.out_conv1 = nn.Conv2d(dc, dc, 1)
        if self.ups >= 2:
            self.resConfUnit2 = ResidualConvUnit(dc)
            self.out_conv2 = nn.Conv2d(dc, dc, 1)
        self.output_conv_scale1 = nn.Conv2d(dc, cfg.mid_channels, 3, padding=1)
        self.output_conv_scale2 = self._out_conv(cfg)
        self.output_conv_shift1 = nn.Conv2d(dc, cfg.mid_channels, 3, padding=1)
        self.output_conv_shift2 = self._out_conv(cfg)

    @staticmethod
    def _out_conv(cfg: HeadConfig) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cfg.mid_channels, cfg.out_hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(cfg.out_hidden, 1, 1),
        )

    # ------------------------------------------------------------------ per scene
    def scene_bias(self, text_emb: torch.Tensor) -> torch.Tensor:
        """Per-scene bias from a text embedding: (B, text_dim) -> (B, in_channels)."""
        return self.crossattn.scene_bias(self.align_mlp(text_emb))

    # ------------------------------------------------------------------ per frame
    def forward_frame(
        self, feats: torch.Tensor, bias: torch.Tensor, grid: tuple[int, int], return_mid: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """Folded per-frame path.

        Args:
            feats: image tokens (B, N, C), N = grid[0] * grid[1].
            bias: per-scene bias (B, C) or (1, C) from :meth:`scene_bias`.
            grid: patch grid (h, w).
            return_mid: also return the 64-channel "mid" features of the scale head.

        Returns:
            (A, B) of shape (B, 1, 14h, 14w), plus the mid features when asked.
        """
        x = self.crossattn.forward_folded(feats.transpose(0, 1), bias.expand(feats.shape[0], -1))
        return self.decode(x.transpose(0, 1), grid, return_mid)

    def forward_reference(
        self, feats: torch.Tensor, text_emb: torch.Tensor, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Full path with the one-token cross-attention, as released."""
        text = self.align_mlp(text_emb).unsqueeze(0)  # (1, B, C)
        x = self.crossattn(feats.transpose(0, 1), text)
        a, b = self.decode(x.transpose(0, 1), grid)[:2]
        return a, b

    def decode(
        self, tokens: torch.Tensor, grid: tuple[int, int], return_mid: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """Tokens (B, N, C) -> A, B (B, 1, 14h, 14w) [+ mid features (B, mid, 2^(ups+1) h, ...)].

        With ``output_stride`` s > 1 the per-map convolutions run at 1/s of the input and
        the log-scale maps are upsampled (bilinear, align_corners=True) to full input size
        before the exponential: A and B stay smooth and positive.
        """
        h, w = grid
        bsz, n, c = tokens.shape
        x = tokens.transpose(1, 2).reshape(bsz, c, h, w)
        x = self.resize_layers(self.projects(x))
        x = self.layer1_rn(x)
        if self.ups >= 1:
            x = _up2(self.out_conv1(self.resConfUnit1(x)))
        if self.ups >= 2:
            x = _up2(self.out_conv2(self.resConfUnit2(x)))
        full = (h * PATCH_SIZE, w * PATCH_SIZE)
        stride = self.cfg.output_stride
        size = full if stride == 1 else (full[0] // stride, full[1] // stride)
        mid_scale = self.output_conv_scale1(x)
        mid_shift = self.output_conv_shift1(x)
        scale = self.output_conv_scale2(F.interpolate(mid_scale, size=size, mode="bilinear", align_corners=True))
        shift = self.output_conv_shift2(F.interpolate(mid_shift, size=size, mode="bilinear", align_corners=True))
        if stride != 1:
            scale = F.interpolate(scale, size=full, mode="bilinear", align_corners=True)
            shift = F.interpolate(shift, size=full, mode="bilinear", align_corners=True)
        a = self.cfg.coef_scale * torch.exp(scale.float())
        b = self.cfg.coef_shift * torch.exp(shift.float())
        if return_mid:
            return a, b, mid_scale
        return a, b


def metric_from_relative(a: torch.Tensor, b: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
    """D_m = 1 / (A * D_r + B), computed in float32, no eps (as released)."""
    return 1.0 / (a.float() * rel.float() + b.float())


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ------------------------------------------------------------------ weights

def official_filter(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a released TR2M head state_dict onto :class:`ScaleMapHead` names.

    Strips a DataParallel ``module.`` prefix, and accepts ``projects.0.*`` /
    ``resize_layers.0.*`` (one-element ModuleLists) as ``projects.*`` / ``resize_layers.*``.
    Unknown keys are kept so the strict check reports them.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        for prefix in ("projects.0.", "resize_layers.0."):
            if k.startswith(prefix):
                k = prefix[:-2] + k[len(prefix):]
        out[k] = value
    return out


def check_state_dict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming every missing, unexpected and mis-shaped key."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {_names(misshaped)}")
    if problems:
        raise CheckpointError(
            f"{source} does not fit the head ({'; '.join(problems)}). Check that the file and the preset match."
        )


def _names(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def load_head_state(head: nn.Module, state: dict[str, torch.Tensor], source: str = "The checkpoint") -> None:
    """Strict load: all keys, all shapes, or a CheckpointError that names the offenders."""
    check_state_dict(head, state, source)
    head.load_state_dict(state, strict=True)


# ------------------------------------------------------------------ builder

def build_head(cfg: ModelConfig, state: dict[str, torch.Tensor] | None = None) -> ScaleMapHead:
    """The head of a model config, random (torch's global RNG) unless ``state`` is given (strict)."""
    head = ScaleMapHead(cfg.head)
    if state is not None:
        load_head_state(head, state)
    return head
