"""What the reference runtime does with a document: accept it, refuse it, or crash."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Stage", "Verdict", "RuntimeRefusal", "Drop", "RefGraph", "RuntimeOutcome", "json_type"]


class Verdict(StrEnum):
    """``accept``: parse and graph build succeed; ``reject``: one of them throws;
    ``crash``: the process dies or never finishes (stack overflow, alias expansion)."""

    ACCEPT = "accept"
    REJECT = "reject"
    CRASH = "crash"


class Stage(StrEnum):
    """Where the reference stops: ``parse`` (``MarkdownParser::parse_from_string``) or
    ``build_dag`` (``TopoScheduler::build_dag`` after node registration)."""

    PARSE = "parse"
    BUILD_DAG = "build_dag"


class RuntimeRefusal(Exception):
    """The reference throws: ``message`` is the text of its exception, ``reason`` a
    short class name (``next_not_found``, ``not_a_string``, ...)."""

    def __init__(self, reason: str, message: str, *, block: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.block = block


@dataclass(frozen=True)
class Drop:
    """Something the reference reads past without a word: the block (or node) concerned,
    what is lost and why. ``severe`` drops change what runs (a block, a node, an edge);
    the others lose declarations the reference does not act on (permissions)."""

    block: str | None
    what: str
    reason: str
    severe: bool = True


@dataclass(frozen=True)
class RefGraph:
    """A graph as the reference builds it: its path and its registered node paths."""

    path: str
    nodes: tuple[str, ...]


@dataclass
class RuntimeOutcome:
    """The reference's verdict on one document, with what it read and dropped."""

    verdict: Verdict
    stage: Stage | None = None
    reason: str | None = None
    message: str | None = None
    block: str | None = None
    graphs: list[RefGraph] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.verdict is Verdict.ACCEPT


def json_type(value: Any) -> str:
    """nlohmann::json's name for a value's type, as its exception messages spell it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
