import pytest
import torch

from tr2m_edge.checkpoint import (
    Checkpoint, import_official, load_checkpoint, save_checkpoint,
)
from tr2m_edge.config import get_preset
from tr2m_edge.errors import CheckpointError
from tr2m_edge.model import build_head
from tr2m_edge.model.head import load_head_state


def _official_state(preset: str = "paper", ddp: bool = False, listed: bool = False) -> dict:
    """A state_dict with the released names and shapes (random values)."""
    head = build_head(get_preset(preset))
    state = {}
    for k, v in head.state_dict().items():
        if listed and k.split(".")[0] in ("projects", "resize_layers"):
            k = k.replace(".", ".0.", 1)
        state[("module." if ddp else "") + k] = torch.randn_like(v)
    return state


def test_checkpoint_round_trip_with_weights_only(tmp_path, tiny_cfg):
    head = build_head(tiny_cfg)
    ckpt = Checkpoint(config=tiny_cfg, head=head.state_dict(), step=12, metrics={"abs_rel": 0.1},
                      extra={"optimizer": {"lr": 1e-5}, "rng": torch.tensor([1, 2, 3])})
    path = save_checkpoint(ckpt, tmp_path / "sub" / "best.pt")
    raw = torch.load(path, weights_only=True)  # plain dict of tensors and primitives
    assert raw["format"] == "tr2m-edge/checkpoint" and raw["step"] == 12
    back = load_checkpoint(path)
    assert back.config == tiny_cfg and back.step == 12 and back.metrics == {"abs_rel": 0.1}
    assert back.head.keys() == ckpt.head.keys()
    for k in ckpt.head:
        assert torch.equal(back.head[k], ckpt.head[k])
    assert torch.equal(back.extra["rng"], torch.tensor([1, 2, 3]))
    assert not list(tmp_path.glob("sub/*.tmp"))  # atomic write leaves no temp file


def test_official_import_round_trip(tmp_path):
    state = _official_state("paper")
    path = tmp_path / "da_s_vitl_vitl.pth"
    torch.save(state, path)
    ckpt = import_official(path)
    assert ckpt.config == get_preset("paper")
    assert set(ckpt.head) == set(state)
    for k, v in state.items():
        assert torch.equal(ckpt.head[k], v), k
    # Saved and reloaded, it loads strictly into the head.
    out = save_checkpoint(ckpt, tmp_path / "best.pt")
    head = build_head(get_preset("paper"))
    load_head_state(head, load_checkpoint(out).head)
    assert torch.equal(head.state_dict()["crossattn.attn_cross.in_proj_weight"], state["crossattn.attn_cross.in_proj_weight"])


@pytest.mark.parametrize("wrap", ["state_dict", "ddp", "listed"])
def test_official_import_variants(tmp_path, wrap):
    state = _official_state("tiny", ddp=wrap == "ddp", listed=wrap == "listed")
    torch.save({"state_dict": state} if wrap == "state_dict" else state, tmp_path / "w.pth")
    ckpt = import_official(tmp_path / "w.pth", preset="tiny")
    assert set(ckpt.head) == set(build_head(get_preset("tiny")).state_dict())


def test_misshaped_official_file_is_rejected_by_name(tmp_path):
    state = _official_state("tiny")
    state["align_mlp.a_fc.weight"] = torch.zeros(3, 3)
    del state["output_conv_shift2.2.bias"]
    state["extra_layer.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        import_official(tmp_path / "bad.pth", preset="tiny")
    msg = str(info.value)
    assert "mis-shaped keys: align_mlp.a_fc.weight (3, 3) (expected (48, 64))" in msg
    assert "missing keys: output_conv_shift2.2.bias" in msg
    assert "unexpected keys: extra_layer.weight" in msg


def test_paper_weights_do_not_fit_tiny_preset(tmp_path):
    torch.save(_official_state("paper"), tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="mis-shaped keys: .*Check that the file and the preset match"):
        import_official(tmp_path / "w.pth", preset="tiny")


def test_bad_files(tmp_path, tiny_cfg):
    with pytest.raises(CheckpointError, match="Checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a zip at all" * 10)
    with pytest.raises(CheckpointError, match="Cannot read .*garbage.pt as a PyTorch weight file"):
        load_checkpoint(tmp_path / "garbage.pt")
    good = save_checkpoint(Checkpoint(config=tiny_cfg, head=build_head(tiny_cfg).state_dict()), tmp_path / "ok.pt")
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(tmp_path / "truncated.pt")
    torch.save(_official_state("tiny"), tmp_path / "official.pth")
    with pytest.raises(CheckpointError, match="not a tr2m-edge checkpoint.*import-official"):
        load_checkpoint(tmp_path / "official.pth")
    torch.save({"weights": [1, 2]}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="is not a TR2M weight file"):
        import_official(tmp_path / "foreign.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"format": "tr2m-edge/checkpoint", "obj": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pickled objects that a safe load refuses"):
        load_checkpoint(tmp_path / "evil.pt")


def test_unwritable_destination(tmp_path, tiny_cfg):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="Cannot write checkpoint"):
        save_checkpoint(Checkpoint(config=tiny_cfg, head={}), blocker / "best.pt")
