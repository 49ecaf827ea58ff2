"""Diagnostics: what the parser and the validator report about a document."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["Severity", "Diagnostic", "DSLParseError", "has_errors"]


class Severity(StrEnum):
    """How bad a finding is: an ``error`` makes the document invalid, a ``warning`` does not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a document.

    Attributes:
        code: the ``ERR_*`` code.
        severity: error or warning.
        message: what is wrong and what to do about it.
        block: the path of the block (or node) concerned, if any.
        line: 1-based line number in the source text, if known.
    """

    code: ErrorCode
    severity: Severity
    message: str
    block: str | None = None
    line: int | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"code", "severity", "message", "block", "line"}``."""
        return {
            "code": self.code.value,
            "severity": self.severity.value,
            "message": self.message,
            "block": self.block,
            "line": self.line,
        }

    def format(self, filename: str = "<text>") -> str:
        """Compiler-style line: ``file:line: ERR_CODE message``."""
        where = f"{filename}:{self.line}" if self.line is not None else filename
        prefix = "" if self.is_error else "warning: "
        block = f" [{self.block}]" if self.block else ""
        return f"{where}: {self.code.value} {prefix}{self.message}{block}"

    def __str__(self) -> str:
        return self.format()


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    """True when any diagnostic is an error."""
    return any(d.is_error for d in diagnostics)


class DSLParseError(AgenticError):
    """Raised by :func:`agentic_llm.dsl.parse` when text cannot be read into a Document.

    ``diagnostics`` lists every problem found (the parser keeps going after the first
    bad block); ``code`` is the first one's code.
    """

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        if not diagnostics:
            raise ValueError("DSLParseError needs at least one diagnostic")
        first = diagnostics[0]
        extra = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        where = f"line {first.line}: " if first.line is not None else ""
        super().__init__(first.code, f"{where}{first.message}{extra}", block=first.block)
        self.diagnostics = list(diagnostics)
