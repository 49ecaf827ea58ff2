"""One place steps the engine: ``agentic_llm/engine/loop.py``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "agentic_llm"


def step_calls(root: Path = PACKAGE) -> list[str]:
    """``<something engine-ish>.step()`` calls (optimizers' ``opt.step()`` are not engines)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "step" and not node.args):
                owner = ast.unparse(node.func.value)
                if "engine" in owner or owner == "self":
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {owner}.step()")
    return found


def test_only_the_engine_loop_calls_step() -> None:
    calls = step_calls()
    assert len(calls) == 1 and calls[0].startswith("agentic_llm/engine/loop.py:"), calls


def test_the_check_sees_a_second_caller(tmp_path: Path) -> None:
    pkg = tmp_path / "agentic_llm"
    pkg.mkdir()
    (pkg / "driver.py").write_text("def run(engine):\n    return engine.step()\n", encoding="utf-8")
    assert step_calls(pkg) == ["agentic_llm/driver.py:2 engine.step()"]
