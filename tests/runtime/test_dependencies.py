"""Layering: the runtime never imports the train/export layers, and PyTorch only lazily."""

from __future__ import annotations

import ast
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
TORCH_MODULES = {"runners/torch_runner.py"}  # imported only when the torch backend is chosen


def imports(tree: ast.AST, top_level_only: bool) -> list[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))  # type: ignore[attr-defined]
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_runtime_imports_neither_train_nor_export():
    files = sorted(RUNTIME.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        for name in imports(ast.parse(path.read_text()), top_level_only=False):
            assert not name.startswith(("tr2m_edge.train", "tr2m_edge.export")), f"{path}: imports {name}"


def test_torch_is_imported_at_module_level_only_by_the_torch_runner():
    for path in sorted(RUNTIME.rglob("*.py")):
        rel = path.relative_to(RUNTIME).as_posix()
        top = imports(ast.parse(path.read_text()), top_level_only=True)
        heavy = [n for n in top if n.split(".")[0] == "torch" or n.startswith("tr2m_edge.model")
                 or n == "tr2m_edge.checkpoint"]
        if rel in TORCH_MODULES:
            assert heavy, rel
        else:
            assert not heavy, f"{rel} imports {heavy} at module level"
