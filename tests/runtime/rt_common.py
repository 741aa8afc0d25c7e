"""Constants and helpers shared by the runtime tests (imported by name: this folder is on sys.path)."""

from __future__ import annotations

import numpy as np

FRAME_SIZE = (112, 144)  # the bundle's fixed camera frame (network input is 140x182)
CAPTIONS = ("a small wooden tabletop with two mugs", "a cobbled street with two vans")


def distinct_frames(count: int, size: tuple[int, int] = FRAME_SIZE, seed: int = 0) -> list[np.ndarray]:
    """``count`` cheap, pairwise different RGB frames (a synthetic scene with a moving bar)."""
    from tr2m_edge.synthetic import render_scene

    base = render_scene(seed, size=size).rgb
    frames = []
    for i in range(count):
        f = base.copy()
        f[:, (i * 3) % size[1]] = (i * 37) % 256
        f[0, 0] = [i % 256, (i // 256) % 256, 7]
        frames.append(f)
    return frames


def run_cli(args, capsys) -> tuple[int | None, str, str]:
    """``tr2m-edge ARGS`` in this process: (exit status, stdout, stderr)."""
    import pytest

    from tr2m_edge.cli import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return info.value.code, out.out, out.err
