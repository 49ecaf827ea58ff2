"""``validate``: every static rule of AgenticDSL, reported as diagnostics."""

from __future__ import annotations

from agentic_llm.dsl.diagnostics import Diagnostic
from agentic_llm.dsl.document import Document
from agentic_llm.dsl.policy import ValidationPolicy
from agentic_llm.dsl.validate.context import Context
from agentic_llm.dsl.validate.graph import check_graph
from agentic_llm.dsl.validate.structure import check_structure
from agentic_llm.dsl.validate.usage import check_usage

__all__ = ["validate"]


def validate(doc: Document, policy: ValidationPolicy | None = None) -> list[Diagnostic]:
    """Check ``doc`` against the spec and ``policy``.

    Returns every finding, ordered by source line; the document is valid when none
    is an error (see :func:`agentic_llm.dsl.has_errors`).
    """
    ctx = Context(doc, policy or ValidationPolicy())
    check_structure(ctx)
    if doc.blocks:
        check_graph(ctx)
        check_usage(ctx)
    return sorted(ctx.diagnostics, key=lambda d: d.line if d.line is not None else 0)
