"""Layers import downward only (docs/architecture.md): a new upward import fails here.

Every ``import`` of an ``agentic_llm`` module anywhere in a module (top level or
inside a function) is an edge. An edge to a higher layer, or across packages of the
same layer, is a violation unless it is listed in KNOWN with the reason it remains.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "agentic_llm"

#: lowest first; a module belongs to the longest prefix that names it
LAYERS: tuple[tuple[str, ...], ...] = (
    ("agentic_llm", "agentic_llm.errors", "agentic_llm.envs", "agentic_llm.registry",
     "agentic_llm.config", "agentic_llm.auth_config", "agentic_llm.observability", "agentic_llm.wire",
     "agentic_llm.tenancy", "agentic_llm._proto"),
    ("agentic_llm.dsl",),
    ("agentic_llm.planner",),
    ("agentic_llm.grammar",),
    # engine types: what a scheduled request is made of (the scheduler imports these)
    ("agentic_llm.engine.constraints", "agentic_llm.engine.diagnostics",
     "agentic_llm.engine.outputs", "agentic_llm.engine.sampling", "agentic_llm.engine.kv",
     "agentic_llm.engine.prefix", "agentic_llm.engine.constraint_state"),
    ("agentic_llm.scheduler",),
    ("agentic_llm.engine",),  # model runner, LLMEngine, the one loop
    ("agentic_llm.models", "agentic_llm.cache", "agentic_llm.aga", "agentic_llm.integrations"),
    ("agentic_llm.library",),
    ("agentic_llm.serving",),
    ("agentic_llm.client", "agentic_llm.server"),
    ("agentic_llm.benchmarks",),
    ("agentic_llm.cli",),  # runs the benchmarks
)

#: (importer package prefix, imported package prefix) -> why it is still there
KNOWN: dict[tuple[str, str], str] = {}


def layer_of(module: str) -> tuple[int, str]:
    best = (-1, "", 0)
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            inside = module == p or (p != "agentic_llm" and module.startswith(p + "."))
            if inside and len(p) > best[2]:
                best = (i, p, len(p))
    return best[0], best[1]


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str, root: Path = PACKAGE) -> bool:
    """Whether ``name`` (dotted, under ``root``'s package) is a module or package."""
    rel = Path(*name.split(".")[1:])
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def imports(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every ``agentic_llm`` module ``path`` imports, anywhere in it; ``from pkg import
    name`` counts as importing ``pkg.name`` when that is a module."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("agentic_llm"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    out.add(sub if is_module(sub, root) else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("agentic_llm"))
    return out


def violations(root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        src = module_name(path, root)
        ls, ps = layer_of(src)
        for dst in sorted(imports(path, root)):
            ld, pd = layer_of(dst)
            if pd == "agentic_llm" or ps == pd or dst.startswith(ps + ".") or src.startswith(pd + "."):
                continue
            same_package = src.split(".")[:2] == dst.split(".")[:2]
            if ld > ls or (ld == ls and not same_package and ls > 0):  # foundations share a layer
                key = (ps, pd)
                if key not in KNOWN:
                    bad.append(f"{src} imports {dst} (layer {ls} -> {ld})")
    return bad


def test_every_module_has_a_layer() -> None:
    unplaced = [module_name(p) for p in PACKAGE.rglob("*.py") if layer_of(module_name(p))[0] < 0]
    assert not unplaced


def test_imports_go_downward() -> None:
    assert violations() == []


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    pkg = tmp_path / "agentic_llm"
    (pkg / "scheduler").mkdir(parents=True)
    (pkg / "scheduler" / "bad.py").write_text(
        "def f():\n    from agentic_llm.engine.loop import EngineLoop\n", encoding="utf-8")
    (pkg / "engine").mkdir()
    (pkg / "engine" / "outputs.py").write_text("from agentic_llm.errors import AgenticError\n",
                                               encoding="utf-8")
    assert violations(pkg) == [
        "agentic_llm.scheduler.bad imports agentic_llm.engine.loop (layer 5 -> 6)"]


def test_the_check_resolves_a_module_imported_from_its_package(tmp_path: Path) -> None:
    pkg = tmp_path / "agentic_llm"
    (pkg / "engine").mkdir(parents=True)
    (pkg / "engine" / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "registry.py").write_text("from agentic_llm import engine, __version__\n",
                                     encoding="utf-8")
    assert violations(pkg) == ["agentic_llm.registry imports agentic_llm.engine (layer 0 -> 6)"]


def test_known_exceptions_still_exist() -> None:
    # an exception that no longer happens must be removed from KNOWN
    edges = set()
    for path in PACKAGE.rglob("*.py"):
        src = layer_of(module_name(path))[1]
        edges.update((src, layer_of(d)[1]) for d in imports(path))
    assert set(KNOWN) <= edges
