"""The package's layering: folders are layers, imports only point down, and there is no cycle.

Each folder may import its own modules and the folders listed under it in `BELOW`, nothing
else. The reading side (config, results, analysis) sits beside the training side (model, train,
ablate), never above it: tables and figures re-render, and specs validate, without training code,
Keras or a backend.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bnbench"
BASE = {"errors"}
BELOW = {
    "errors": set(),
    "config": BASE,
    "results": BASE | {"config"},
    "data": BASE | {"config"},
    "model": BASE | {"config"},
    "train": BASE | {"config", "results", "data", "model"},
    "ablate": BASE | {"config", "results", "data", "train"},
    "analysis": BASE | {"config", "results"},
    "demos": BASE | {"config", "data", "analysis"},
    "export": BASE | {"config", "results", "analysis"},
    "claims": BASE | {"config", "results", "analysis", "demos"},
    "cli": BASE
    | {
        "config",
        "results",
        "data",
        "model",
        "train",
        "ablate",
        "analysis",
        "demos",
        "export",
        "claims",
    },
    "__main__": {"cli"},
}
TRAINING_SIDE = ("bnbench.train", "bnbench.model", "bnbench.ablate")
BACKENDS = ("keras", "tensorflow", "jax", "torch")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every bnbench module `path` imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    modules = _modules()
    return {name for name in names if name in modules}


def _layer(module: str) -> str:
    part = module.split(".")[1] if "." in module else ""
    assert part in BELOW, f"{module}: not in a known layer; add its folder to BELOW"
    return part


def test_every_module_is_in_a_layer():
    for module in _modules():
        if module != "bnbench":
            _layer(module)


def test_imports_only_point_down():
    wrong = []
    for module, path in _modules().items():
        if module == "bnbench":
            continue
        folder = _layer(module)
        for target in _imports(path):
            if target == "bnbench":
                continue
            target_folder = _layer(target)
            if target_folder != folder and target_folder not in BELOW[folder]:
                wrong.append(f"{module} ({folder}) imports {target} ({target_folder})")
    assert not wrong, "imports that do not point down a layer:\n" + "\n".join(wrong)


def test_no_import_cycle():
    # A package importing its own submodules (`from bnbench.cli import run`) is not a cycle.
    graph = {module: _imports(path) - {"bnbench", module} for module, path in _modules().items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_layer_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The rule is not vacuous: an analysis module importing training code is reported."""
    fake = tmp_path / "bnbench"
    (fake / "analysis").mkdir(parents=True)
    (fake / "train").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "analysis" / "__init__.py").write_text("")
    (fake / "train" / "__init__.py").write_text("")
    (fake / "train" / "loop.py").write_text("")
    (fake / "analysis" / "bad.py").write_text("from bnbench.train.loop import train\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    with pytest.raises(AssertionError, match=r"bnbench.analysis.bad \(analysis\) imports"):
        test_imports_only_point_down()


@pytest.mark.parametrize(
    "package",
    ["bnbench.analysis", "bnbench.config", "bnbench.results", "bnbench.export", "bnbench.demos"],
)
def test_reading_side_never_loads_training_or_a_backend(package):
    """Importing every module of the package loads no training code, Keras or backend."""
    modules = [m for m in _modules() if m == package or m.startswith(package + ".")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"bad = {TRAINING_SIDE + BACKENDS!r}\n"
        "print(sorted(m for m in sys.modules if m.startswith(bad)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
