"""The runtime install: a bundle runs with no PyTorch, the wheel holds every sub-package, the README's
API example and install recipes work as written, and (slow) a fresh venv with only the base
requirements + [cpu] runs a bundle."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import cv2
import pytest
from rt_common import CAPTIONS, FRAME_SIZE, distinct_frames

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
TRAINING_ONLY = ("torch", "torchvision", "transformers", "open_clip", "onnx", "onnxscript", "safetensors")
PACKAGE_DIRS = {"tr2m_edge": "tr2m_edge", "train": "tr2m_edge/train", "export": "tr2m_edge/export",
                "runtime": "tr2m_edge/runtime", "calib": "tr2m_edge/calib", "demo": "tr2m_edge/demo"}


def readme_block(heading: str, lang: str) -> str:
    """The first ```lang block after the README line ``heading``."""
    tail = README[README.index(heading):]
    match = re.search(rf"```{lang}\n(.*?)```", tail, re.S)
    assert match, f"no {lang} block after {heading!r}"
    return match.group(1)


def test_a_bundle_runs_with_every_training_package_blocked(tiny_bundle, run_blocked, tmp_path):
    code = ("import sys\nfrom tr2m_edge.cli import main\n"
            "for args in ([" + ", ".join(repr(a) for a in ("run", "-b", str(tiny_bundle), "--synthetic", "--frames", "3",
                                                          "--text", "a loading dock", "--save-depth",
                                                          str(tmp_path / "d"))) + "], ['info', "
            f"{str(tiny_bundle)!r}]):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code in (0, None), e.code\n"
            f"print([m for m in {TRAINING_ONLY!r} if sys.modules.get(m) is not None])")
    out = run_blocked(code, blocked=TRAINING_ONLY)
    assert out.strip().splitlines()[-1] == "[]"
    assert len((tmp_path / "d" / "frames.jsonl").read_text().splitlines()) == 3


def test_the_readme_api_example_runs_as_written(tiny_bundle, run_blocked, tmp_path):
    example = readme_block("### Python API", "python")
    assert example.count("\n") <= 12 and "from tr2m_edge import DepthPipeline" in example
    (tmp_path / "bundle").symlink_to(tiny_bundle)
    frame = distinct_frames(1, size=(120, 160))[0]  # another size than the bundle's: the pipeline resizes
    cv2.imwrite(str(tmp_path / "frame.jpg"), frame[:, :, ::-1])
    out = run_blocked(f"import os\nos.chdir({str(tmp_path)!r})\n" + example, blocked=TRAINING_ONLY)
    lines = out.strip().splitlines()
    match = re.fullmatch(r"\((\d+), (\d+)\) (\S+) (\S+)", lines[0])
    assert match, lines[0]
    h, w, lo, hi = int(match[1]), int(match[2]), float(match[3]), float(match[4])
    assert (h, w) == FRAME_SIZE and 0 < lo <= hi
    assert [line.split()[0] for line in lines[1:]] == ["0", "1", "2"]
    assert all(line.endswith("warehouse aisle") for line in lines[1:])


def test_every_install_recipe_ends_with_the_same_run_command():
    recipes = ["### CPU only", "### x86_64 with an NVIDIA GPU", "### Jetson (JetPack 6"]
    last = [readme_block(h, "bash").strip().splitlines()[-1] for h in recipes]
    assert len(set(last)) == 1 and last[0].startswith("tr2m-edge run -b bundle "), last
    assert "--system-site-packages" in readme_block("### Jetson (JetPack 6", "bash")


def _source_copy(dest: Path) -> Path:
    """The project's tracked files copied to ``dest`` (no build/, .venv, caches: a clean build)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    return dest


def build_wheel(tmp: Path) -> Path:
    src = _source_copy(tmp / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True, text=True, timeout=600)
    return next((tmp / "dist").glob("tr2m_edge-*.whl"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_every_sub_package_and_the_base_needs_no_torch(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for folder, installed in PACKAGE_DIRS.items():
        for init in sorted((REPO / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(REPO / folder).as_posix()
            pkg = installed if rel == "." else f"{installed}/{rel}"
            assert f"{pkg}/__init__.py" in names, f"{pkg} is missing from the wheel (pyproject.toml packages)"
            for module in init.parent.glob("*.py"):
                assert f"{pkg}/{module.name}" in names, f"{pkg}/{module.name} is missing from the wheel"
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    base = sorted(re.split(r"[<>=\s;]", r)[0] for r in requires if "extra ==" not in r)
    assert base == ["ftfy", "numpy", "rich", "typer"]  # no torch, no onnxruntime, no OpenCV in the base

    def extra(name: str) -> list[str]:
        return sorted(re.split(r"[<>=\s;]", r)[0] for r in requires if f'extra == "{name}"' in r)

    assert extra("cpu") == ["onnxruntime"]
    assert "onnxruntime" not in extra("gpu") and "onnxruntime-gpu" in extra("gpu") and "tensorrt" in extra("gpu")
    assert extra("opencv") == ["opencv-python-headless"] and extra("gui") == ["opencv-python"]
    assert {"torch", "transformers", "open_clip_torch", "onnx"} <= set(extra("export")) <= set(extra("train"))


@pytest.mark.slow  # a fresh venv and pip installing numpy + onnxruntime + typer + rich + ftfy: minutes
def test_a_fresh_venv_with_the_base_and_cpu_extra_runs_a_bundle(tiny_bundle, wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", f"{wheel}[cpu]"], check=True, timeout=1800)
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                            check=True).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert not installed & {"torch", "transformers", "open-clip-torch", "onnx", "opencv-python-headless"}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    cli = str(env_dir / "bin" / "tr2m-edge")
    run = subprocess.run([cli, "run", "-b", str(tiny_bundle), "--synthetic", "--frames", "3", "--text", CAPTIONS[1]],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "done: 3 frames read, 3 written" in run.stderr
    export = subprocess.run([cli, "export", "--random-head", "-o", str(tmp_path / "b")], capture_output=True,
                            text=True, timeout=300, env=env, cwd=tmp_path)
    assert export.returncode == 2 and export.stderr.strip().splitlines() == [
        "error: tr2m-edge export needs PyTorch (torch is not installed): pip install 'tr2m-edge[export]'."]
    (tmp_path / "in.mp4").write_bytes(b"not decoded: OpenCV is missing")
    video = subprocess.run([cli, "run", "-b", str(tiny_bundle), "--video", "in.mp4", "--text", "x"],
                           capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert video.returncode == 2 and "pip install 'tr2m-edge[opencv]'" in video.stderr, video.stderr
