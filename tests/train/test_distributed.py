"""The trainer under torchrun: 2 gloo processes on the CPU match 1 process with the doubled batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tr2m_edge.checkpoint import load_checkpoint
from tr2m_edge.train.config import load_train_config
from tr2m_edge.train.trainer import train

# Tolerances. Per-step losses: the two runs differ only in float summation order (gloo
# all-reduce of per-rank gradients vs one batch), ~1e-7 relative. Weights: Adam divides
# by sqrt(v), so parameters whose gradients are ~0 (the scale branch A, multiplied by a
# near-zero D_r from the random tiny Depth Anything) move by up to lr per step on
# rounding noise alone; after 6 steps at lr 1e-3 they agree to 1e-4 (0.1 lr).
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-4


def _losses(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["event"] == "train"]


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is not available")
def test_two_gloo_processes_match_one_process_with_double_batch(tmp_path: Path) -> None:
    overrides = ["input_size=[56, 70]", 'train=[{"name": "synthetic", "count": 16}]', "val=null", "steps=6",
                 "batch_size=4", "lr=0.001", "schedule=cosine", "augment=true", "log_every=1", "ckpt_every=6",
                 "val_every=6", "progress=false"]
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(load_train_config(None, overrides).to_json())
    script = shutil.which("tr2m-edge", path=str(Path(sys.executable).parent))
    assert script is not None
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", script, "train",
           "--config", str(cfg_path), "--out", str(tmp_path / "two")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Trained 6 steps" in done.stdout

    one = train(load_train_config(cfg_path, ["batch_size=8", f"out_dir={json.dumps(str(tmp_path / 'one'))}"]))
    assert one.step == 6
    two_rows, one_rows = _losses(tmp_path / "two"), _losses(tmp_path / "one")
    assert [r["step"] for r in two_rows] == [r["step"] for r in one_rows] == list(range(1, 7))
    start = json.loads((tmp_path / "two" / "log.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 2
    for a, b in zip(one_rows, two_rows):
        for key in ("loss", "si", "tpsi", "coarse", "fine", "es"):
            assert b[key] == pytest.approx(a[key], rel=LOSS_RTOL, abs=1e-7), (a["step"], key)
    ha, hb = load_checkpoint(tmp_path / "one" / "last.pt").head, load_checkpoint(tmp_path / "two" / "last.pt").head
    worst = max(float((ha[k] - hb[k]).abs().max()) for k in ha)
    assert worst < WEIGHT_ATOL
    best = load_checkpoint(tmp_path / "two" / "best.pt")  # rank 0 validated at step 6 (the only check)
    assert best.step == 6 and all(torch.equal(best.head[k], hb[k]) for k in hb)
