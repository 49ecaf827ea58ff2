"""Inja templates: which context variables a template reads.

``{{ expr }}`` expressions and the expressions of ``{% if %}``, ``{% for %}`` and
``{% set %}`` statements are parsed with a lark grammar (grammars/template.lark):
dotted paths, indexing, ``$.path`` roots, function calls, Jinja-style filters,
operators and literals. Names bound by ``for`` and ``set`` are local, not reads.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import LarkError

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["TemplateSyntaxError", "template_variables", "has_template", "MAX_TEMPLATE_CHARS"]

MAX_TEMPLATE_CHARS = 100_000

_OPEN = re.compile(r"\{\{|\{%|\{#")
_FOR = re.compile(
    r"^for\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s*,\s*([A-Za-z_][A-Za-z0-9_]*))?\s+in\s+(.+)$", re.S
)
_SET = re.compile(r"^set\s+([A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z0-9_.]+)?\s*=\s*(.+)$", re.S)
_IF = re.compile(r"^(?:if|else\s+if|elif)\s+(.+)$", re.S)
_BARE = frozenset({"else", "endif", "endfor", "endset"})
_FORBIDDEN = ("include", "extends", "import", "macro", "call", "block", "raw")


class TemplateSyntaxError(AgenticError):
    """A template the Inja grammar cannot read (code ``ERR_TEMPLATE_SYNTAX``)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.TEMPLATE_SYNTAX, message)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("agentic_llm.dsl").joinpath("grammars/template.lark").read_text()
    return Lark(grammar, parser="lalr")


def has_template(text: str) -> bool:
    """True when ``text`` contains a ``{{``, ``{%`` or ``{#`` tag."""
    return _OPEN.search(text) is not None


# The common case, a bare (dotted) variable, skips the LALR parser.
_SIMPLE_VAR = re.compile(r"^\s*(\$\.)?([A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z0-9_]+)*\s*$")
_WORDS = frozenset(
    {
        "true",
        "false",
        "null",
        "True",
        "False",
        "None",
        "none",
        "and",
        "or",
        "not",
        "in",
        "is",
        "if",
        "else",
    }
)


_CONSTANTS = frozenset({"true", "false", "null", "True", "False", "None", "none"})


@lru_cache(maxsize=16384)
def _reads(expr: str) -> frozenset[str]:
    m = _SIMPLE_VAR.match(expr)
    if m is not None and m.group(2) not in _WORDS:
        return frozenset({m.group(2)})
    if m is not None and m.group(1) is None and m.group(0).strip() in _CONSTANTS:
        return frozenset()
    return _parse_reads(expr)


def _parse_reads(expr: str) -> frozenset[str]:
    try:
        tree = _parser().parse(expr)
    except LarkError as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TemplateSyntaxError(f"cannot read expression {expr.strip()!r}: {detail}") from None
    roots: set[str] = set()
    stack: list[Tree[Token] | Token] = [tree]
    while stack:
        item = stack.pop()
        if not isinstance(item, Tree):
            continue
        if item.data == "var":
            root = str(item.children[0])
            if root == "$":
                first = item.children[1] if len(item.children) > 1 else None
                if isinstance(first, Tree) and first.data == "attr":
                    roots.add(str(first.children[0]))
                else:
                    roots.add("$")
            else:
                roots.add(root)
        stack.extend(item.children)
    return frozenset(roots)


def _statement(body: str, locals_: set[str]) -> frozenset[str]:
    body = body.strip().lstrip("-").rstrip("-").strip()
    if body in _BARE:
        return frozenset()
    word = body.split(None, 1)[0] if body else ""
    if word in _FORBIDDEN:
        raise TemplateSyntaxError(f"'{{% {word} %}}' is not allowed in AgenticDSL templates")
    m = _FOR.match(body)
    if m:
        locals_.update(n for n in (m.group(1), m.group(2)) if n)
        locals_.add("loop")
        return _reads(m.group(3))
    m = _SET.match(body)
    if m:
        reads = _reads(m.group(2))
        locals_.add(m.group(1))
        return reads
    m = _IF.match(body)
    if m:
        return _reads(m.group(1))
    raise TemplateSyntaxError(f"unknown statement '{{% {body} %}}'")


@lru_cache(maxsize=8192)
def _template_variables(text: str) -> frozenset[str]:
    reads: set[str] = set()
    locals_: set[str] = set()
    pos = 0
    while True:
        m = _OPEN.search(text, pos)
        if m is None:
            break
        tag = m.group(0)
        close = {"{{": "}}", "{%": "%}", "{#": "#}"}[tag]
        end = text.find(close, m.end())
        if end < 0:
            raise TemplateSyntaxError(f"'{tag}' at offset {m.start()} is never closed by '{close}'")
        inner = text[m.end() : end]
        if tag == "{{":
            inner = inner.strip().lstrip("-").rstrip("-")
            if not inner.strip():
                raise TemplateSyntaxError(f"empty expression '{{{{}}}}' at offset {m.start()}")
            reads |= _reads(inner)
        elif tag == "{%":
            reads |= _statement(inner, locals_)
        pos = end + len(close)
    return frozenset(reads - locals_)


def template_variables(text: str) -> set[str]:
    """Root names of the context variables ``text`` reads.

    ``"Hello {{ user.name }} {{ $.items[0] }}"`` reads ``{"user", "items"}``;
    function names (``length(x)``) and names bound by ``for`` / ``set`` are not reads.

    Raises:
        TemplateSyntaxError: a tag is unclosed or an expression is not Inja syntax.
    """
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateSyntaxError(f"template longer than {MAX_TEMPLATE_CHARS} characters")
    return set(_template_variables(text))
