import torch

from tr2m_edge.config import get_preset
from tr2m_edge.model import ScaleMapHead, count_parameters
from tr2m_edge.model.head import metric_from_relative

PAPER_HEAD_PARAMS = 18.96e6  # TR2M_FACTS section 1


def test_paper_head_parameter_count():
    with torch.device("meta"):
        head = ScaleMapHead(get_preset("paper").head)
    n = count_parameters(head, trainable_only=True)
    assert abs(n - PAPER_HEAD_PARAMS) / PAPER_HEAD_PARAMS < 0.005
    assert n == 18_959_746  # the architecture of TR2M_FACTS, counted layer by layer


def _randomise(head: torch.nn.Module) -> None:
    # Default init leaves LayerNorms at 1/0 and attention biases at 0: randomise every
    # 1-D parameter too, so no term of the comparison is trivially zero.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in head.named_parameters():
            if p.ndim == 1:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.5 * torch.randn(p.shape, generator=g))


def _folded_and_reference(preset: str, batch: int, grid: tuple[int, int]):
    """A randomised head of ``preset``: (head, feats, A, B folded, A, B through the full cross-attention)."""
    cfg = get_preset(preset).head
    head = ScaleMapHead(cfg).eval()
    _randomise(head)
    feats = torch.randn(batch, grid[0] * grid[1], cfg.in_channels)
    text = torch.randn(batch, cfg.text_dim)
    with torch.no_grad():
        a_ref, b_ref = head.forward_reference(feats, text, grid)
        a, b = head.forward_frame(feats, head.scene_bias(text), grid)
    return head, feats, a, b, a_ref, b_ref


def test_folded_bias_equals_full_cross_attention_tiny():
    grid = (10, 13)
    head, feats, a, b, a_ref, b_ref = _folded_and_reference("tiny", 3, grid)
    cfg = head.cfg
    assert a.shape == (3, 1, 140, 182) and b.shape == a.shape
    assert (a - a_ref).abs().max() <= 1e-5
    assert (b - b_ref).abs().max() <= 1e-5
    # The caption is not a no-op: another one changes A.
    with torch.no_grad():
        a2, _ = head.forward_frame(feats, head.scene_bias(torch.randn(3, cfg.text_dim)), grid)
    assert (a2 - a).abs().max() > 1e-3 * a.abs().max()


def test_folded_block_equals_reference_block():
    # The block output (O(1) values) is where folding happens: compare it directly.
    cfg = get_preset("tiny").head
    head = ScaleMapHead(cfg).eval()
    _randomise(head)
    x = torch.randn(30, 2, cfg.in_channels)
    text = torch.randn(2, cfg.text_dim)
    with torch.no_grad():
        aligned = head.align_mlp(text)
        ref = head.crossattn(x, aligned.unsqueeze(0))
        folded = head.crossattn.forward_folded(x, head.scene_bias(text))
        other = head.crossattn.forward_folded(x, head.scene_bias(torch.randn(2, cfg.text_dim)))
    assert (folded - ref).abs().max() <= 1e-5
    assert (other - ref).abs().max() > 0.1


def test_folded_bias_equals_full_cross_attention_paper_width():
    _, _, a, b, a_ref, b_ref = _folded_and_reference("paper", 1, (4, 5))
    assert (a - a_ref).abs().max() <= 1e-5 * max(1.0, a_ref.abs().max().item())
    assert (b - b_ref).abs().max() <= 1e-5 * max(1.0, b_ref.abs().max().item())


def test_scene_bias_is_independent_of_the_image():
    cfg = get_preset("tiny").head
    head = ScaleMapHead(cfg).eval()
    text = torch.randn(2, cfg.text_dim)
    bias = head.scene_bias(text)
    assert bias.shape == (2, cfg.in_channels)
    # Reference cross-attention output equals the bias for any query.
    x = torch.randn(7, 2, cfg.in_channels)
    kv = head.crossattn.ln_text(head.align_mlp(text)).unsqueeze(0)
    out = head.crossattn.attn_cross(head.crossattn.ln_visual(x), kv, kv, need_weights=False)[0]
    torch.testing.assert_close(out, head.crossattn.scene_bias(head.align_mlp(text)).expand(7, -1, -1), atol=1e-6, rtol=1e-5)


def test_scale_and_shift_are_positive_and_coefficients_apply():
    cfg = get_preset("tiny").head
    head = ScaleMapHead(cfg).eval()
    for p in head.output_conv_scale2[2].parameters():
        torch.nn.init.zeros_(p)
    for p in head.output_conv_shift2[2].parameters():
        torch.nn.init.zeros_(p)
    feats = torch.randn(1, 4, cfg.in_channels)
    with torch.no_grad():
        a, b = head.forward_frame(feats, head.scene_bias(torch.randn(1, cfg.text_dim)), (2, 2))
    # exp(0) = 1 -> A = coef_scale, B = coef_shift exactly.
    assert torch.allclose(a, torch.full_like(a, cfg.coef_scale))
    assert torch.allclose(b, torch.full_like(b, cfg.coef_shift))


def test_metric_from_relative():
    a = torch.tensor([[[[0.5, 2.0]]]])
    b = torch.tensor([[[[0.1, 0.0]]]])
    rel = torch.tensor([[[[1.8, 0.25]]]])
    assert torch.allclose(metric_from_relative(a, b, rel), torch.tensor([[[[1.0, 2.0]]]]))


def test_coarse_output_strides_give_full_size_smooth_maps():
    import dataclasses

    base = get_preset("tiny").head
    grid = (10, 13)
    feats = torch.randn(2, grid[0] * grid[1], base.in_channels)
    text = torch.randn(2, base.text_dim)
    sizes = {}
    for stride in (1, 2, 4, 8):
        head = ScaleMapHead(dataclasses.replace(base, output_stride=stride)).eval()
        with torch.no_grad():
            a, b = head.forward_frame(feats, head.scene_bias(text), grid)
        assert a.shape == b.shape == (2, 1, 140, 182) and bool((a > 0).all()) and bool((b > 0).all())
        sizes[stride] = sum(p.numel() for p in head.parameters())
    assert sizes[1] == sizes[2] > sizes[4] > sizes[8]  # coarser strides drop trunk stages
    assert not hasattr(ScaleMapHead(dataclasses.replace(base, output_stride=8)), "resConfUnit1")


def test_edge_preset_costs_at_most_115_percent_of_the_depth_model():
    from tr2m_edge.model.macs import count_macs

    count = count_macs(get_preset("edge"))  # 434x560, random weights of the published sizes (meta device)
    assert count.ratio_to_depth <= 1.15, count
    assert "image_encoder" not in count.per_frame  # one ViT per frame
