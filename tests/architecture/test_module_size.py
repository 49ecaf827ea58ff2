"""A module over 500 lines says why at its top.

Every module under ``agentic_llm/`` (the generated ``_proto`` package aside) longer
than ``LIMIT`` lines must carry, in its module docstring, a paragraph starting with
``Size:`` that gives the reason it is not split. The usual answer is to split it
along a seam (style guide: one concept per module).
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.architecture.test_import_direction import PACKAGE

LIMIT = 500
GENERATED = ("_proto",)


def size_reason(text: str) -> str:
    """The module docstring's ``Size:`` paragraph ("" when it has none)."""
    doc = ast.get_docstring(ast.parse(text)) or ""
    for paragraph in doc.split("\n\n"):
        stripped = paragraph.strip()
        if stripped.startswith("Size:") and stripped[len("Size:"):].strip():
            return stripped
    return ""


def unexplained(root: Path = PACKAGE) -> list[str]:
    """``path (lines)`` of each module over LIMIT lines without a ``Size:`` paragraph."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in GENERATED:
            continue
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > LIMIT and not size_reason(text):
            out.append(f"{rel.as_posix()} ({lines} lines)")
    return out


def test_every_long_module_says_why() -> None:
    assert unexplained() == []


def test_the_check_reads_the_docstring_paragraph(tmp_path: Path) -> None:
    pkg = tmp_path / "agentic_llm"
    (pkg / "_proto").mkdir(parents=True)
    body = "x = 1\n" * LIMIT
    (pkg / "short.py").write_text('"""Short."""\n' + "x = 1\n" * (LIMIT - 1), encoding="utf-8")
    (pkg / "long.py").write_text('"""Long.\n\nIt is big.\n"""\n' + body, encoding="utf-8")
    (pkg / "empty_reason.py").write_text('"""Long.\n\nSize:\n"""\n' + body, encoding="utf-8")
    (pkg / "comment.py").write_text('"""Long."""\n# Size: said in a comment\n' + body,
                                    encoding="utf-8")
    (pkg / "explained.py").write_text(
        '"""Long.\n\nSize: one table of every opcode; split, it reads worse.\n"""\n' + body,
        encoding="utf-8")
    (pkg / "_proto" / "gen_pb2.py").write_text(body + body, encoding="utf-8")
    assert unexplained(pkg) == [f"comment.py ({LIMIT + 2} lines)",
                                f"empty_reason.py ({LIMIT + 4} lines)",
                                f"long.py ({LIMIT + 4} lines)"]
