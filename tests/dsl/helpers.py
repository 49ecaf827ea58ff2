"""Small helpers for DSL tests: build one-block documents from YAML bodies."""

from __future__ import annotations

from agentic_llm.dsl import Diagnostic, Severity, ValidationPolicy, check_text
from agentic_llm.errors import ErrorCode


def block(path: str, body: str, heading: str = "###") -> str:
    """One canonical-looking block around ``body`` (no trailing newline needed)."""
    return (
        f"{heading} AgenticDSL `{path}`\n```yaml\n# --- BEGIN AgenticDSL ---\n"
        f"{body.strip(chr(10))}\n# --- END AgenticDSL ---\n```\n"
    )


def doc(*blocks: str) -> str:
    return "\n".join(blocks)


def errors(text: str, policy: ValidationPolicy | None = None) -> list[Diagnostic]:
    return [d for d in check_text(text, policy) if d.severity is Severity.ERROR]


def error_codes(text: str, policy: ValidationPolicy | None = None) -> set[ErrorCode]:
    return {d.code for d in errors(text, policy)}


def warning_codes(text: str, policy: ValidationPolicy | None = None) -> set[ErrorCode]:
    return {d.code for d in check_text(text, policy) if d.severity is Severity.WARNING}


SIMPLE_DYNAMIC = block(
    "/dynamic/p",
    """
graph_type: subgraph
entry: "start"
nodes:
  - id: "start"
    type: start
    next: ["/dynamic/p/end"]
  - id: "end"
    type: end
""",
)
