"""Finding AgenticDSL blocks in Markdown text.

Accepted heading forms (what the reference runtime's parser and the spec text use):
any number of ``#``, the word ``AgenticDSL``, the path in backticks or single quotes;
then a fence ````` ``` ````` or ````` ```yaml `````; optional ``# --- BEGIN AgenticDSL ---`` /
``# --- END AgenticDSL ---`` marker lines around the YAML; the closing fence.
Everything outside blocks (prose, other code blocks) is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentic_llm.dsl.diagnostics import Diagnostic, Severity
from agentic_llm.errors import ErrorCode

__all__ = ["RawBlock", "extract_blocks", "BEGIN_MARKER", "END_MARKER"]

BEGIN_MARKER = "# --- BEGIN AgenticDSL ---"
END_MARKER = "# --- END AgenticDSL ---"

_HEADING = re.compile(r"^[ \t]{0,3}#+[ \t]+AgenticDSL[ \t]+(?:`([^`\n]*)`|'([^'\n]*)')[ \t]*$")
_LOOSE_HEADING = re.compile(r"^[ \t]{0,3}#+[ \t]*AgenticDSL\b")
_OPEN_FENCE = re.compile(r"^[ \t]{0,3}```[ \t]*(?:yaml|yml|YAML)?[ \t]*$")
_ANY_FENCE = re.compile(r"^[ \t]{0,3}```")
_CLOSE_FENCE = re.compile(r"^[ \t]{0,3}```[ \t]*$")


@dataclass(frozen=True)
class RawBlock:
    """A block's path and YAML text, with the 1-based line numbers needed to map YAML
    positions back to the file."""

    path: str
    yaml: str
    heading_line: int
    yaml_line: int


def _err(message: str, line: int, block: str | None = None) -> Diagnostic:
    return Diagnostic(ErrorCode.SYNTAX, Severity.ERROR, message, block, line)


def extract_blocks(text: str) -> tuple[list[RawBlock], list[Diagnostic]]:
    """Split ``text`` into raw blocks; malformed blocks become ``ERR_SYNTAX`` diagnostics."""
    lines = text.split("\n")
    blocks: list[RawBlock] = []
    diags: list[Diagnostic] = []
    i = 0
    in_foreign_fence = False
    n = len(lines)
    while i < n:
        line = lines[i].rstrip("\r")
        if in_foreign_fence:
            if _CLOSE_FENCE.match(line):
                in_foreign_fence = False
            i += 1
            continue
        m = _HEADING.match(line)
        if m is None:
            if _LOOSE_HEADING.match(line):
                diags.append(
                    _err(
                        "malformed AgenticDSL heading; write `### AgenticDSL `/path`` "
                        "with the path in backticks",
                        i + 1,
                    )
                )
            elif _ANY_FENCE.match(line):
                in_foreign_fence = True
            i += 1
            continue
        path = m.group(1) if m.group(1) is not None else m.group(2)
        heading_line = i + 1
        j = i + 1
        while j < n and not lines[j].strip():
            j += 1
        if j >= n or not _OPEN_FENCE.match(lines[j].rstrip("\r")):
            diags.append(
                _err("heading is not followed by a ``` or ```yaml fence", heading_line, path)
            )
            i += 1
            continue
        k = j + 1
        while k < n and not _CLOSE_FENCE.match(lines[k].rstrip("\r")):
            k += 1
        if k >= n:
            diags.append(_err("code fence is never closed; add a ``` line", j + 1, path))
            break
        body = [ln.rstrip("\r") for ln in lines[j + 1 : k]]
        first_yaml = j + 2
        stripped = [ln.strip() for ln in body]
        if BEGIN_MARKER in stripped:
            b = stripped.index(BEGIN_MARKER)
            if END_MARKER not in stripped[b + 1 :]:
                diags.append(
                    _err(f"'{BEGIN_MARKER}' has no matching '{END_MARKER}'", j + 2 + b, path)
                )
                i = k + 1
                continue
            e = stripped.index(END_MARKER, b + 1)
            body = body[b + 1 : e]
            first_yaml = j + 3 + b
        elif END_MARKER in stripped:
            e = stripped.index(END_MARKER)
            diags.append(_err(f"'{END_MARKER}' without '{BEGIN_MARKER}'", j + 2 + e, path))
            i = k + 1
            continue
        blocks.append(RawBlock(path, "\n".join(body), heading_line, first_yaml))
        i = k + 1
    return blocks, diags
