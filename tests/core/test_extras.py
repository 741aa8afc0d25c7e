"""A command that needs a missing extra says which one, in one line (tr2m_edge/extras.py + the CLI)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tr2m_edge.extras import extra_for, install_hint, missing_module_message


@pytest.mark.parametrize("module, command, extra", [
    ("torch", "export", "export"), ("torch._C", "run", "export"), ("transformers", "train", "train"),
    ("open_clip", "demo", "train"), ("onnx", "export", "export"), ("h5py", "eval", "train"),
    ("cv2", "run", "opencv"), ("onnxruntime", "bench", "cpu"), ("tensorrt", "build", "gpu"),
    ("cuda.bindings", "run", "gpu"), ("yaml", "run", None), ("tr2m_edge.nope", "run", None),
])
def test_each_missing_module_maps_to_the_extra_that_installs_it(module, command, extra):
    assert extra_for(module, command) == extra
    if extra is None:
        assert install_hint(module, command) is None and missing_module_message(module, command) is None
    else:
        assert install_hint(module, command).startswith(f"pip install 'tr2m-edge[{extra}]'")


def test_the_message_names_command_package_and_extra():
    assert missing_module_message("torch", "export") == (
        "tr2m-edge export needs PyTorch (torch is not installed): pip install 'tr2m-edge[export]'.")
    assert "JetPack's OpenCV" in missing_module_message("cv2", "run")


def _cli(blocked: tuple[str, ...], *args: str) -> subprocess.CompletedProcess:
    block = "".join(f"sys.modules[{m!r}] = None; " for m in blocked)
    code = f"import sys; {block}\nfrom tr2m_edge.cli import main\nmain({list(args)!r})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("blocked, args, line", [
    (("torch",), ("export", "--random-head", "-o", "/tmp/never-written"),
     "error: tr2m-edge export needs PyTorch (torch is not installed): pip install 'tr2m-edge[export]'."),
    (("torch",), ("train", "--steps", "1"),
     "error: tr2m-edge train needs PyTorch (torch is not installed): pip install 'tr2m-edge[train]'."),
])
def test_a_command_without_its_extra_fails_in_one_line(blocked, args, line):
    proc = _cli(blocked, *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [line], proc.stderr


def test_info_works_without_pytorch():
    proc = _cli(("torch", "torchvision", "transformers", "open_clip"), "info")
    assert proc.returncode in (0, None) and "Traceback" not in proc.stderr, proc.stderr
    assert "parameter counts (?) need PyTorch: pip install 'tr2m-edge[export]'" in proc.stdout
    assert "OpenCV: " in proc.stdout and "Presets" in proc.stdout
