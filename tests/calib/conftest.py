"""Fixtures of the calibration tests (``fp16_bundle``, the tiny bundle they calibrate, is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tr2m_edge.cli import main


@pytest.fixture
def cli(capsys):
    """Run ``tr2m-edge ARGS`` through the CLI's own main(): returns (exit status, stdout, stderr)."""

    def run(*args: object) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
