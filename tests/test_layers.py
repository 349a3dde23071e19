"""The package's layers: imports run one way, and ``import fastcheck`` stays light.

apps -> api -> pipeline -> {report, engines} -> {core, mlp} -> errors. The one upward
call that may stay is ``MLP.check`` / ``MLP.plan`` (in ``mlp/model.py``) calling the API
from inside the method.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fastcheck"

#: What each layer may import (besides itself).
ALLOWED = {
    "errors": set(),
    "core": {"errors"},
    "mlp": {"errors", "core"},
    "engines": {"errors", "core", "mlp"},
    "report": {"errors", "core"},
    "pipeline": {"errors", "core", "mlp", "engines", "report"},
    "api": {"errors", "core", "mlp", "engines", "report", "pipeline"},
    "apps": {"errors", "core", "mlp", "engines", "report", "pipeline", "api", "face"},  # face: __version__
    "face": {"errors", "core", "mlp", "engines", "report", "pipeline", "api"},
}
#: (importing module, imported module): the documented upward calls.
UPWARD = {("fastcheck.mlp.model", "fastcheck.api")}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "face"
    if parts[1] in ("api", "testing"):
        return "api"
    return parts[1]


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[str, int, bool]]:
    """(imported fastcheck module, line, inside a function) for every import in ``path``."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if n is not f}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from . import x` may name a module: count the submodule when it is one
            targets = [f"{base}.{a.name}" if (root.parent / Path(*f"{base}.{a.name}".split("."))).with_suffix(
                ".py").exists() or (root.parent / Path(*f"{base}.{a.name}".split("."))).is_dir() else base
                for a in node.names]
        else:
            continue
        for target in targets:
            if target == root.name or target.startswith(root.name + "."):
                out.append((target, node.lineno, id(node) in nested))
    return out


def violations(root: Path) -> list[str]:
    """Every import that goes against the layers, and every import circle, under ``root``."""
    problems, graph = [], {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        mine = layer_of(name)
        for target, line, _ in imports_of(path, root):
            graph.setdefault(name, set()).add(target)
            theirs = layer_of(target)
            if theirs == mine or (name, target) in UPWARD:
                continue
            if theirs not in ALLOWED[mine]:
                problems.append(f"{path.relative_to(root.parent)}:{line}: {mine} imports {theirs} ({target})")
    problems += [f"import circle: {' -> '.join(c)}" for c in _circles(graph, UPWARD)]
    return problems


def _circles(graph: dict, allowed: set) -> list[list[str]]:
    """Circles of module imports (the documented upward calls left out)."""
    edges = {a: {b for b in bs if (a, b) not in allowed and b != a and not a.startswith(b + ".")}
             for a, bs in graph.items()}
    found, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


def test_imports_run_one_way():
    assert violations(PACKAGE) == []


def test_the_layer_check_catches_a_forbidden_import(tmp_path):
    """The check itself: a core module importing the pipeline, and a circle, are both reported."""
    root = tmp_path / "fastcheck"
    for folder in ("core", "pipeline"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "core" / "layout.py").write_text("from ..pipeline.options import CheckOptions\n")
    (root / "pipeline" / "options.py").write_text("from ..core.layout import Layout\n")
    found = violations(root)
    assert any("core imports pipeline" in p for p in found), found
    assert any(p.startswith("import circle") for p in found), found


def test_only_apps_import_apps():
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path, PACKAGE)
        if layer_of(name) == "apps":
            continue
        for target, line, _ in imports_of(path, PACKAGE):
            assert layer_of(target) != "apps", f"{path}:{line} imports {target}"


@pytest.mark.parametrize("heavy", ["numba", "joblib"])
def test_import_fastcheck_loads_no_heavy_module(heavy):
    code = f"import sys, fastcheck; print({heavy!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", f"`import fastcheck` loaded {heavy}"
