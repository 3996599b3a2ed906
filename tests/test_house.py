"""The house rules of the package's layout (issue 37): no module over 500 lines in ric_ext/ outside
security/ (a newcomer reads one room at a time), and no two modules that import each other, even
inside a function (each file can be read, and changed, before the other)."""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ric_ext")
MAX_LINES = 500
#: compiled extension modules: ``from . import _C`` imports the module, not a name of the package
NATIVE = {"_C"}


def _modules() -> dict:
    """dotted name -> path of every .py file in the package."""
    mods = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                mods[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return mods


def _imports(name: str, path: str, mods: dict) -> set:
    """The package's modules that ``name`` imports anywhere in its file."""
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            base = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            for a in node.names:
                if a.name in NATIVE:
                    continue
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base)
    return {m for m in out if m in mods and m != name}


def test_the_checker_sees_a_circle(tmp_path):
    """The import reader finds a function-level import and a package-relative one (so the test can fail)."""
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from .b import x\n    from .. import c\n")
    mods = {"p.a.m": str(f), "p.a.b": "", "p.c": ""}
    assert _imports("p.a.m", str(f), mods) == {"p.a.b", "p.c"}


def test_no_module_over_500_lines_outside_security():
    long = {
        n: sum(1 for _ in open(p))
        for n, p in _modules().items()
        if not n.startswith("ric_ext.security") and sum(1 for _ in open(p)) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_two_modules_import_each_other():
    mods = _modules()
    edges = {n: _imports(n, p, mods) for n, p in mods.items()}
    circles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in edges[b]})
    assert not circles, f"modules that import each other: {circles}"


@pytest.mark.parametrize(
    "name", ["ric_ext.engines", "ric_ext.engines.base", "ric_ext.engines.digits", "ric_ext.engines.replayed"]
)
def test_the_engines_stand_alone(name):
    """Each scheme's engine is reached from the cipher, never the other way round."""
    mods = _modules()
    assert "ric_ext.cipher" not in _imports(name, mods[name], mods)
