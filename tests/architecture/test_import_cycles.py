"""No import cycles: between modules at import time, and between packages at all.

Two graphs, two rules:

- **Modules, import time.** An edge is an ``agentic_llm`` import that runs when the
  module is imported: a statement in the module body (also inside a top-level
  ``if`` / ``try`` / ``with``), not under ``if TYPE_CHECKING``, not inside a function
  or class body. ``from pkg import name`` is an edge to ``pkg.name`` when that is a
  module, else to ``pkg``. A cycle here means one of its modules sees another half
  initialised, depending on which is imported first; none may exist. An import inside
  a function runs after both modules are loaded, so it is left out of this graph (it
  is how a module reaches a heavy or optional dependency on first use), and so is
  the implicit import of a module's parent package, which Python handles.
- **Packages, any import.** A unit is a package of the layer table in
  ``test_import_direction`` (``agentic_llm.cache``, ``agentic_llm.engine.kv``, ...);
  an edge is any ``agentic_llm`` import, lazy ones included. The direction test
  already forbids upward imports and imports between packages of one layer, except
  among the foundations; this graph catches a cycle there too (and any left by a
  listed exception), because two packages that need each other are one concept
  split in two.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

from agentic_llm.dsl.validate.graph import find_cycles
from tests.architecture.test_import_direction import PACKAGE, imports, layer_of, module_name


def _resolve(module: str, names: Iterable[str], known: set[str]) -> set[str]:
    out = set()
    for name in names:
        sub = f"{module}.{name}"
        out.add(sub if sub in known else module)
    return out


def import_time_imports(path: Path, known: set[str]) -> set[str]:
    """The ``agentic_llm`` modules ``path`` imports while it is itself imported."""
    out: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names if a.name.startswith("agentic_llm"))
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module and node.module.startswith("agentic_llm"):
                    out.update(_resolve(node.module, (a.name for a in node.names), known))
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return out


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node, and self-loops, each
    sorted (the validator's Tarjan, which also finds cycles in DSL graphs)."""
    found = find_cycles({v: sorted(ws) for v, ws in sorted(graph.items())})
    return sorted(sorted(comp) for comp in found)


def module_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(paths)
    return {m: {d for d in import_time_imports(p, known) if d in known and d != m}
            for m, p in paths.items()}


def package_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        src = layer_of(module_name(path, root))[1]
        for dst in imports(path, root):
            unit = layer_of(dst)[1]
            if unit not in ("", "agentic_llm", src):
                graph.setdefault(src, set()).add(unit)
    return graph


def test_no_import_time_cycle_between_modules() -> None:
    assert cycles(module_graph()) == []


def test_no_cycle_between_packages() -> None:
    assert cycles(package_graph()) == []


def _tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        f = tmp_path / "agentic_llm" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")
    return tmp_path / "agentic_llm"


def test_the_module_check_catches_a_top_level_cycle_and_skips_lazy_ones(tmp_path: Path) -> None:
    pkg = _tree(tmp_path, {
        "cache/__init__.py": "",
        "cache/a.py": "from agentic_llm.cache import b\n",
        "cache/b.py": "try:\n    from agentic_llm.cache.c import C\nexcept ImportError:\n    C = None\n",
        "cache/c.py": "from agentic_llm.cache.a import A\n",
        # lazy and typing-only imports back are not import-time edges
        "cache/d.py": "from agentic_llm.cache.e import E\n",
        "cache/e.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                       "    from agentic_llm.cache.d import D\n"
                       "def f():\n    from agentic_llm.cache.d import D\n"),
    })
    assert cycles(module_graph(pkg)) == [
        ["agentic_llm.cache.a", "agentic_llm.cache.b", "agentic_llm.cache.c"]]


def test_the_package_check_counts_lazy_imports(tmp_path: Path) -> None:
    pkg = _tree(tmp_path, {
        "registry.py": "def f():\n    from agentic_llm.observability.health import H\n",
        "observability/__init__.py": "",
        "observability/health.py": "def g():\n    from agentic_llm import registry\n",
    })
    assert cycles(package_graph(pkg)) == [["agentic_llm.observability", "agentic_llm.registry"]]
