"""Class 2: user text (captions, paths) is never interpreted as rich markup."""

from __future__ import annotations

import torch


def test_a_path_with_markup_in_an_error(tmp_path, cli, assert_one_line):
    code, _, err = cli("import-official", tmp_path / "w[/x].pth")
    assert_one_line(code, err, r"Checkpoint not found: .*w\[/x\]\.pth")


def test_a_caption_with_markup_is_cached_listed_and_removed(bundle_copy, cli, monkeypatch):
    from tr2m_edge.cli import export as export_cli

    monkeypatch.setattr(export_cli.console, "width", 200)  # a wide terminal: the table does not fold captions
    code, out, err = cli("scenes", "add", bundle_copy, "shelf [/] row", "[bold]loud[/bold] dock")
    assert code == 0, err
    assert "shelf [/] row" in out and "[bold]loud[/bold] dock" in out
    code, out, err = cli("scenes", "list", bundle_copy)
    assert code == 0, err
    assert "[bold]loud[/bold] dock" in out and "shelf [/] row" in out  # as typed: markup would consume the tags
    code, out, err = cli("scenes", "rm", bundle_copy, "shelf [/] row")
    assert code == 0 and "shelf [/] row" in out, err


def test_run_with_a_markup_caption(battery_bundle, cli):
    code, _, err = cli("run", "-b", battery_bundle, "--synthetic", "-n", "2", "--text", "bay [/] 4")
    assert code == 0, err
    assert "bay [/] 4" in err and "2 written" in err


def test_an_imported_file_name_with_markup(tmp_path, cli):
    from tr2m_edge.config import get_preset
    from tr2m_edge.model import build_head

    state = {k: torch.randn_like(v) for k, v in build_head(get_preset("tiny")).state_dict().items()}
    src = tmp_path / "w[bold]x.pth"  # ("w[/x].pth" is a folder "w[" and a file "x].pth": not found, above)
    torch.save(state, src)
    code, out, err = cli("import-official", src, "--preset", "tiny", "-o", tmp_path / "b[red].pt")
    assert code == 0, err
    assert "w[bold]x.pth" in "".join(out.split()) and (tmp_path / "b[red].pt").is_file()
