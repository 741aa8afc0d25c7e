import subprocess
import sys

import pytest
import torch

from tr2m_edge.cli import main
from tr2m_edge.config import get_preset
from tr2m_edge.model import build_head


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_help_lists_commands(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for cmd in ("info", "import-official"):
        assert cmd in out


def test_info(capsys):
    code, out, _ = run_cli(["info"], capsys)
    assert code == 0
    assert "onnxruntime" in out and "CPUExecutionProvider" in out
    assert "TensorRT" in out and "18.96 M" in out and "paper" in out and "edge" in out
    assert "paper: depth: LiheYoung/depth-anything-small-hf; image features: facebook/dinov2-large; " \
           "text: open_clip ViT-L-14-quickgelu:openai; text in fp32" in out and "0.001-80" in out


def test_import_official_cli(tmp_path, capsys):
    state = {k: torch.randn_like(v) for k, v in build_head(get_preset("tiny")).state_dict().items()}
    torch.save(state, tmp_path / "w.pth")
    code, out, _ = run_cli(["import-official", str(tmp_path / "w.pth"), "--preset", "tiny", "-o", str(tmp_path / "best.pt")], capsys)
    assert code == 0 and (tmp_path / "best.pt").is_file() and "Imported" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["import-official", "/nonexistent/da.pth"], "Checkpoint not found: /nonexistent/da.pth"),
        (["import-official", "{corrupt}"], "Cannot read .* as a PyTorch weight file"),
        (["import-official", "{tiny}", "--preset", "giant"], "Unknown preset 'giant'. Available: paper, edge, tiny"),
        (["import-official", "{tiny}"], "does not fit the head \\(mis-shaped keys: "),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys, args, message):
    (tmp_path / "corrupt.pth").write_bytes(b"garbage" * 100)
    torch.save(build_head(get_preset("tiny")).state_dict(), tmp_path / "tiny.pth")
    args = [a.format(corrupt=tmp_path / "corrupt.pth", tiny=tmp_path / "tiny.pth") if "{" in a else a for a in args]
    code, _, err = run_cli(args, capsys)
    assert code != 0
    line = " ".join(err.split())  # rich may wrap long lines; the message is one logical line
    assert line.startswith("error:")
    assert "Traceback" not in err
    import re
    assert re.search(message, line), line


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tr2m_edge", "import-official", str(tmp_path / "x.pth")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "error: Checkpoint not found" in proc.stderr and "Traceback" not in proc.stderr
