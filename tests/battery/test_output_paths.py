"""Class 1: output paths are checked before any work; write errors during a run end it in one
line with the outputs so far complete."""

from __future__ import annotations

import json
import subprocess

import pytest

from battery_common import immutable, mutable, snapshot


@pytest.fixture()
def existing(tmp_path):
    """A folder and a file that already exist (and must survive every refused command)."""
    folder = tmp_path / "adir"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    file = tmp_path / "afile.txt"
    file.write_text("keep")
    return folder, file


def test_import_official_output(tmp_path, existing, cli, assert_one_line):
    folder, file = existing
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    before = snapshot(tmp_path)
    code, _, err = cli("import-official", weights, "-o", folder)
    assert_one_line(code, err, r"--output .*adir is an existing folder; give a file path")
    code, _, err = cli("import-official", weights, "-o", tmp_path / "missing" / "best.pt")
    assert_one_line(code, err, r"the folder .*missing does not exist; create it first")
    assert snapshot(tmp_path) == before


def test_run_outputs(battery_bundle, tmp_path, existing, cli, assert_one_line):
    folder, file = existing
    before = snapshot(tmp_path)
    code, _, err = cli("run", "-b", battery_bundle, "--synthetic", "-n", "2", "--text", "a room", "--out", folder)
    assert_one_line(code, err, r"Unsupported video extension|--out .*adir is an existing folder")
    code, _, err = cli("run", "-b", battery_bundle, "--synthetic", "-n", "2", "--text", "a room",
                       "--out", folder / "x.mp4" / "y.mp4")
    assert_one_line(code, err, r"--out .*the folder .*x\.mp4 does not exist")
    code, _, err = cli("run", "-b", battery_bundle, "--synthetic", "-n", "2", "--text", "a room", "--save-depth", file)
    assert_one_line(code, err, r"--save-depth .*afile\.txt is an existing file; give a folder path")
    assert snapshot(tmp_path) == before


def test_bench_json(battery_bundle, tmp_path, existing, cli, assert_one_line):
    folder, _ = existing
    code, _, err = cli("bench", battery_bundle, "--json", tmp_path / "nope" / "b.json")
    assert_one_line(code, err, r"--json .*the folder .*nope does not exist")
    code, _, err = cli("bench", battery_bundle, "--json", folder)
    assert_one_line(code, err, r"--json .*is an existing folder")


def test_train_outputs(tmp_path, existing, cli, assert_one_line):
    folder, file = existing
    before = snapshot(tmp_path)
    code, _, err = cli("train", "--out", file, "--steps", "1", "--no-progress")
    assert_one_line(code, err, r"--out \(out_dir\) .*afile\.txt is an existing file")
    code, _, err = cli("train", "--write-config", folder)
    assert_one_line(code, err, r"--write-config .*adir is an existing folder")
    assert snapshot(tmp_path) == before


def test_demo_output(tmp_path, existing, cli, assert_one_line):
    _, file = existing
    before = snapshot(tmp_path)
    code, _, err = cli("demo", "--out", file)
    assert_one_line(code, err, r"--out .*afile\.txt is an existing file; give a folder path")
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(subprocess.run(["which", "chattr"], capture_output=True).returncode != 0, reason="no chattr")
def test_read_only_folders_are_refused_before_work(battery_bundle, tmp_path, cli, assert_one_line):
    ro = tmp_path / "ro"
    ro.mkdir()
    if not immutable(ro):
        pytest.skip("chattr +i is not permitted here (it makes a folder read-only for root too)")
    try:
        code, _, err = cli("run", "-b", battery_bundle, "--synthetic", "-n", "2", "--text", "a room",
                           "--save-depth", ro)
        assert_one_line(code, err, r"--save-depth .*ro: cannot write into .*Operation not permitted")
        code, _, err = cli("run", "-b", battery_bundle, "--synthetic", "-n", "2", "--text", "a room",
                           "--out", ro / "v.mp4")
        assert_one_line(code, err, r"--out .*cannot write into")
        code, _, err = cli("bench", battery_bundle, "--json", ro / "b.json")
        assert_one_line(code, err, r"--json .*cannot write into")
    finally:
        mutable(ro)


@pytest.fixture()
def tiny_disk(tmp_path):
    """A real 96 KiB filesystem (tmpfs) to fill up; skipped where mounting is not permitted."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not permitted here")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_full_disk_during_a_run_ends_it_in_one_line(battery_bundle, tiny_disk, cli, assert_one_line):
    out = tiny_disk / "depth"
    code, _, err = cli("run", "-b", battery_bundle, "--synthetic", "-n", "400", "--text", "a room",
                       "--save-depth", out, "--save-npy")
    assert_one_line(code, err, r"Writing the save-depth output failed at frame (\d+) \(No space left on device\); "
                               r"the \1 frame\(s\) written before it are complete")
    written = int(__import__("re").search(r"failed at frame (\d+)", err).group(1))
    assert written > 0
    records = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(written))  # every record names complete files
    for r in records:
        assert (out / r["png"]).stat().st_size > 0 and (out / r["npy"]).stat().st_size > 0
