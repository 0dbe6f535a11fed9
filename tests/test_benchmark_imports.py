"""Every ``from hackforge_edge... import name`` in benchmarks/ (most sit inside ``main()``, so
importing a script does not run them) names something the package still has: a renamed helper
must not leave a benchmark that fails only when someone runs it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def _package_imports(path: Path) -> list[tuple[str, str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hackforge_edge"):
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names
                      if alias.name.startswith("hackforge_edge")]
    return found


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports_resolve(path):
    missing = []
    for module, name, line in _package_imports(path):
        mod = importlib.import_module(module)
        if name and not hasattr(mod, name):
            try:  # a submodule imported by name
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{path.name}:{line}: {module}.{name}")
    assert not missing, missing


def test_the_check_sees_the_benchmarks():
    assert len(BENCHMARKS) >= 10
    assert any(m == "hackforge_edge.export" for p in BENCHMARKS for m, _, _ in _package_imports(p))
