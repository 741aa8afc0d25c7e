"""``tr2m-edge info --macs``: the MAC counter's numbers per component and the per-frame ratio."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tr2m_edge.cli import main
from tr2m_edge.config import get_preset
from tr2m_edge.model.macs import count_macs


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_edge_at_434x560_costs_at_most_115_percent_of_its_depth_model(capsys):
    code, out, err = run_cli(["info", "--macs", "edge", "--size", "434x560"], capsys)
    assert code in (0, None), err
    count = count_macs(get_preset("edge"), (434, 560))
    ratio = float(re.search(r"per-frame path / depth model alone: ([0-9.]+)x", out).group(1))
    assert ratio == round(count.ratio_to_depth, 3)
    assert ratio <= 1.15
    flat = " ".join(out.split())
    assert f"depth model │ per frame │ {count.per_frame['depth'] / 1e9:.2f}" in flat
    assert f"head │ per frame │ {count.per_frame['head'] / 1e9:.2f}" in flat
    assert "image encoder │ per frame │ - │ shared" in flat
    assert f"text encoder │ per scene (new caption) │ {count.per_caption['text_encoder'] / 1e9:.4f}" in flat


def test_the_full_resolution_decoder_misses_the_goal(capsys):
    code, out, err = run_cli(["info", "--macs", "edge", "--output-stride", "1"], capsys)
    assert code in (0, None), err
    ratio = float(re.search(r"per-frame path / depth model alone: ([0-9.]+)x", out).group(1))
    assert ratio > 1.15  # why the edge preset predicts A and B at a fraction of the resolution


def test_bad_macs_options_fail_in_one_line(capsys):
    code, out, err = run_cli(["info", "--size", "434x560"], capsys)
    assert code == 2 and "--size and --output-stride go with --macs PRESET" in err
    code, out, err = run_cli(["info", "--macs", "nope"], capsys)
    assert code == 2 and "Unknown preset 'nope'" in err
    code, out, err = run_cli(["info", "--macs", "tiny", "--size", "100x100"], capsys)
    assert code == 2 and "error:" in err


def test_without_pytorch_the_macs_path_names_the_extra():
    block = "".join(f"sys.modules[{m!r}] = None; " for m in ("torch", "torchvision", "transformers", "open_clip"))
    code = f"import sys; {block}\nfrom tr2m_edge.cli import main\nmain(['info', '--macs', 'edge'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: tr2m-edge info needs PyTorch (torch is not installed): pip install 'tr2m-edge[export]'."], proc.stderr
