"""The layout installs as tr2m_edge.* sub-packages and nothing generic lands on sys.path."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, json, sys
import tr2m_edge.train, tr2m_edge.export, tr2m_edge.runtime, tr2m_edge.calib
print(json.dumps({
    "generic": {n: importlib.util.find_spec(n) is not None for n in ("train", "export", "runtime", "calib")},
    "files": {n: sys.modules["tr2m_edge." + n].__file__ for n in ("train", "export", "runtime", "calib")},
}))
"""

CORE_PROBE = """
import json, sys
import tr2m_edge.config, tr2m_edge.bundle, tr2m_edge.preprocess, tr2m_edge.metrics, tr2m_edge.errors
import tr2m_edge.system, tr2m_edge.synthetic, tr2m_edge.tokenizer, tr2m_edge.caption_cache, tr2m_edge.contract, tr2m_edge.runtime
print(json.dumps("torch" in sys.modules))
"""


def test_subpackages_map_to_top_level_folders(tmp_path):
    # Run from an unrelated folder so the repository root is not on sys.path.
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True)
    data = json.loads(proc.stdout)
    assert data["generic"] == {"train": False, "export": False, "runtime": False, "calib": False}
    for name, path in data["files"].items():
        assert Path(path).resolve() == REPO / name / "__init__.py"



def test_core_modules_the_runtime_uses_import_no_torch(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CORE_PROBE], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) is False
