"""The bad-input battery (issue 10): every class of bad or odd input ends in one line and a
non-zero exit, every stop drains, nothing pre-existing is damaged.

Fixtures: ``cli`` runs ``tr2m-edge`` in-process and returns (exit code, stdout, stderr);
``assert_one_line`` checks an error is one line, without a traceback, with the expected
words; ``battery_bundle`` is a tiny bundle (fixed 112x144 frames, one cached caption),
exported once; ``bundle_copy`` a fresh copy of it per test.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from battery_common import CAPTION, FRAME


@pytest.fixture()
def cli(capsys):
    from tr2m_edge.cli import main

    def run(*args: object) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = 0 if exc.code is None else int(exc.code)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture()
def assert_one_line():
    def check(code: int, err: str, pattern: str, status: int = 2) -> None:
        assert code == status, f"exit {code}, stderr: {err}"
        assert "Traceback" not in err, err
        lines = [line for line in err.strip().splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1, f"expected one error line, got: {err}"
        assert re.search(pattern, errors[0]), f"{pattern!r} not in {errors[0]!r}"

    return check


@pytest.fixture(scope="session")
def battery_bundle(tmp_path_factory) -> Path:
    from tr2m_edge.checkpoint import random_head_checkpoint
    from tr2m_edge.config import get_preset
    from tr2m_edge.export import export_bundle

    out = tmp_path_factory.mktemp("battery") / "bundle"
    return export_bundle(random_head_checkpoint(get_preset("tiny")), out, frame_size=FRAME, scenes=[CAPTION],
                         progress=False)


@pytest.fixture()
def bundle_copy(battery_bundle, tmp_path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(battery_bundle, copy)
    return copy
