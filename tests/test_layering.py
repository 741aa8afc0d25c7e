"""The dependency rules of ARCHITECTURE.md / the README, enforced on the source tree.

Every import statement counts, at module level or inside a function (a lazy import is
still a dependency), including ``TYPE_CHECKING`` blocks::

    cli ──> demo, train, export, runtime, calib ──> core (tr2m_edge/*.py, model/, synthetic/)
    demo ──> train, export, runtime             core imports none of the layers above it
    export ──> runtime (runners, for parity)    runtime imports neither train, export, calib nor demo
    calib ──> runtime (frame sources)           train imports neither runtime, export, calib nor demo

and no two files import each other, directly or through others (no import circles).

The package's own ``tr2m_edge/__init__.py`` is the facade (``from tr2m_edge import
DepthPipeline``): it may import the runtime's API, inside functions only, so that
``import tr2m_edge`` imports no layer; core and train may not import it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYER_DIRS = {"train": "train", "export": "export", "runtime": "runtime", "calib": "calib", "demo": "demo"}
TORCH_MODULES = {"runners/torch_runner.py", "plans/torch_frame.py"}  # imported only when the torch backend is chosen

# layer -> the layers it must never import
FORBIDDEN = {
    "core": {"cli", "train", "export", "runtime", "calib", "demo", "facade"},
    "facade": {"cli", "train", "export", "calib", "demo"},
    "runtime": {"cli", "train", "export", "calib", "demo"},
    "train": {"cli", "runtime", "export", "calib", "demo", "facade"},
    "export": {"cli", "train", "calib", "demo"},
    "calib": {"cli", "train", "export", "demo"},
    "demo": {"cli", "calib"},
}


def module_name(path: Path) -> str:
    """The import name of a source file under the package-dir mapping (train/x.py -> tr2m_edge.train.x)."""
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[0] != "tr2m_edge":
        parts = ["tr2m_edge", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    roots = [REPO / "tr2m_edge", *(REPO / d for d in LAYER_DIRS.values())]
    return {module_name(p): p for root in roots for p in sorted(root.rglob("*.py"))}


FILES = source_files()


def layer_of(module: str) -> str:
    if module == "tr2m_edge":  # the package __init__: the lazy API facade
        return "facade"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYER_DIRS:
        return parts[1]
    if len(parts) > 1 and parts[1] in ("cli", "__main__"):  # python -m tr2m_edge is the CLI too
        return "cli"
    return "core"


def imported_modules(path: Path, top_level_only: bool = False) -> list[str]:
    """Project modules ``path`` imports (``from a import b`` -> ``a.b`` when that is a module, else ``a``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append(sub if sub in FILES else node.module)
    return found


def project_imports(path: Path) -> set[str]:
    return {m for m in imported_modules(path) if m in FILES}


def test_the_tree_is_read():
    assert len(FILES) > 80
    assert {"tr2m_edge.runtime.pipeline", "tr2m_edge.export.bundle_writer", "tr2m_edge.train.trainer",
            "tr2m_edge.demo", "tr2m_edge.contract"} <= set(FILES)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_a_layer_it_must_not(layer):
    bad = []
    for module, path in FILES.items():
        if layer_of(module) != layer:
            continue
        for name in imported_modules(path):
            if name.startswith("tr2m_edge") and layer_of(name) in FORBIDDEN[layer]:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "\n".join(bad)


def test_there_is_no_import_circle_between_files():
    graph = {m: project_imports(p) - {m} for m, p in FILES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_torch_is_imported_at_module_level_only_by_the_torch_runner_and_its_plan():
    runtime = REPO / "runtime"
    for path in sorted(runtime.rglob("*.py")):
        rel = path.relative_to(runtime).as_posix()
        top = imported_modules(path, top_level_only=True)
        heavy = [n for n in top if n.split(".")[0] == "torch" or n.startswith("tr2m_edge.model")
                 or n == "tr2m_edge.checkpoint"]
        if rel in TORCH_MODULES:
            assert heavy, rel
        else:
            assert not heavy, f"{rel} imports {heavy} at module level"


def test_the_facade_imports_the_runtime_only_when_an_attribute_is_asked_for():
    path = FILES["tr2m_edge"]
    lazy = [n for n in imported_modules(path) if n.startswith("tr2m_edge.") and layer_of(n) != "core"]
    top = [n for n in imported_modules(path, top_level_only=True) if n.startswith("tr2m_edge.") and layer_of(n) != "core"]
    assert lazy and all(layer_of(n) == "runtime" for n in lazy), lazy
    assert not top, f"tr2m_edge/__init__.py imports {top} at module level"
