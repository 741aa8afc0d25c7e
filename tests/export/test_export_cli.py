"""`tr2m-edge export`, `scenes` and `info BUNDLE`: thin commands, one-line errors."""

from __future__ import annotations

import re

import pytest

from tr2m_edge.cli import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from tr2m_edge.checkpoint import save_checkpoint
    from tr2m_edge.config import get_preset
    from tr2m_edge.checkpoint import random_head_checkpoint

    return save_checkpoint(random_head_checkpoint(get_preset("tiny")), tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.mark.parametrize(
    "args,message",
    [
        (["export", "--ckpt", "/nonexistent/best.pt"], r"Checkpoint not found: /nonexistent/best\.pt"),
        (["export", "--random-head", "--preset", "giant"], r"Unknown preset 'giant'\. Available: paper, edge, tiny"),
        (["export", "--ckpt", "{ckpt}", "--input-size", "434x500"], r"Input size 434x500 is not a multiple of 14 .* use e\.g\. 434x504"),
        (["export", "--ckpt", "{ckpt}", "-o", "{blocked}/bundle"], r"Cannot write the bundle to .*blocked/bundle: .*Choose a writable folder"),
        (["export"], r"Give either --ckpt best\.pt, or --random-head"),
        (["export", "--ckpt", "{ckpt}", "--preset", "tiny"], r"--preset only goes with --random-head"),
        (["export", "--ckpt", "{ckpt}", "--frame-size", "480by640"], r"Cannot read frame size '480by640'"),
        (["export", "--ckpt", "{ckpt}", "--exporter", "onnx2"], r"Unknown exporter 'onnx2'"),
        (["scenes", "list", "/nonexistent/bundle"], r"Bundle folder not found: /nonexistent/bundle"),
        (["info", "/nonexistent/bundle"], r"Bundle folder not found: /nonexistent/bundle"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys, checkpoint, args, message):
    (tmp_path / "blocked").write_text("a file where a folder should be")
    args = [a.format(ckpt=checkpoint, blocked=tmp_path / "blocked") if "{" in a else a for a in args]
    code, _, err = run_cli(args, capsys)
    assert code != 0
    line = " ".join(err.split())  # rich may wrap; the message is one logical line
    assert line.startswith("error:") and "Traceback" not in err
    assert re.search(message, line), line


def test_export_info_and_scenes_commands(tmp_path, capsys, checkpoint):
    out_dir = tmp_path / "bundle"
    code, out, _ = run_cli(["export", "--ckpt", checkpoint, "--frame-size", "120x160", "--scene", "warehouse aisle",
                            "-o", out_dir, "--quiet"], capsys)
    text = " ".join(out.split())  # rich wraps long lines
    assert code in (0, None)
    assert f"Wrote bundle {out_dir} (8 files, verified)" in text and "parity fp32" in text

    code, out, _ = run_cli(["info", out_dir], capsys)
    text = " ".join(out.split())
    assert code in (0, None) and "files verified" in text and "frame 120x160" in text
    assert "parity fp32 (onnxruntime-cpu)" in text and "passed" in text and "cached scenes: 'warehouse aisle'" in text

    code, out, _ = run_cli(["scenes", "add", out_dir, "Loading Dock"], capsys)
    out = " ".join(out.split())
    assert code in (0, None) and "cached 'loading dock' as loading-dock-" in out
    name = re.search(r"as (loading-dock-[0-9a-f]+)", out).group(1)
    code, out, _ = run_cli(["scenes", "list", out_dir], capsys)
    listed = " ".join(out.split())
    assert name in listed and re.search(r"warehouse-aisle-[0-9a-f]{10}", listed)
    code, out, _ = run_cli(["scenes", "rm", out_dir, name], capsys)
    assert code in (0, None) and f"removed {name}" in " ".join(out.split())
    code, _, err = run_cli(["scenes", "rm", out_dir, name], capsys)
    assert code != 0 and f"No cached scene '{name}'" in " ".join(err.split())

    (out_dir / "head.onnx").write_bytes(b"tampered")
    code, _, err = run_cli(["info", out_dir], capsys)
    assert code != 0 and "head.onnx does not match its sha256" in " ".join(err.split())
