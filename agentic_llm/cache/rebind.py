"""Rebinding context values in a cached subgraph (the fuzzy hit).

A subgraph generated for ``city = "Rome"`` may carry ``"hotels in Rome"`` literally.
For a request that differs only in values, the old values are replaced by the new
ones where, and only where, that is unambiguous:

* every occurrence of an old value lies inside a *value string*: an ``arguments`` or
  ``assign`` entry value, a ``prompt_template`` or a ``condition``; never in an id, a
  path, a tool name, a key, output keys, bare YAML or inside a ``{{ ... }}`` /
  ``{% ... %}`` template expression;
* each occurrence is a whole word (``Rome`` in ``Romeo`` does not count);
* no two variables share the value that occurs, and occurrences do not overlap;
* the old and new values are scalars (strings, numbers, booleans).

Anything else is reported as ambiguous and the caller treats the lookup as a miss.
The text is the canonical form (docs/canonical-form.md), one literal per line part.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from agentic_llm.dsl.emit import quote

__all__ = ["rebind", "RebindResult", "VALUE_KEYS", "VALUE_MAPPINGS"]

# bare keys whose string value is free text a variable value may appear in
VALUE_KEYS = frozenset({"prompt_template", "condition"})
# mappings whose entries' values are free text (their quoted keys are not)
VALUE_MAPPINGS = frozenset({"arguments", "assign"})

_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')
_BARE_KEY_LINE = re.compile(r"^(?:- )?([a-z_][a-z0-9_]*):(?: (.*))?$")
_QUOTED_KEY_LINE = re.compile(r'^"(?:[^"\\]|\\.)*": ')
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")


class RebindResult(NamedTuple):
    """``text`` is the rebound subgraph, or None when rebinding was ambiguous."""

    text: str | None
    replaced: int
    reason: str


def _render(value: Any) -> str | None:
    """How a scalar value appears inside a canonical string literal; None for non-scalars."""
    if isinstance(value, str):
        return quote(value)[1:-1]
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def _same(a: Any, b: Any) -> bool:
    # JSON equality: 1 and True differ, 1 and 1.0 do not matter for text anyway
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _value_spans(text: str) -> list[tuple[int, int]]:
    """Interiors of the string literals a value may be rebound in, minus templates."""
    spans: list[tuple[int, int]] = []
    stack: list[tuple[int, str]] = []  # (indent, bare key) of open mappings
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        content = body.lstrip(" ")
        indent = len(body) - len(content)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        wanted: tuple[int, int] | None = None
        m = _BARE_KEY_LINE.match(content)
        if m:
            key, rest = m.group(1), m.group(2)
            if rest is None:
                # "- id:" style items put their keys two columns further in
                stack.append((indent + (2 if content.startswith("- ") else 0), key))
            elif key in VALUE_KEYS:
                lit = _LITERAL.fullmatch(rest)
                if lit:
                    start = offset + indent + (len(content) - len(rest)) + 1
                    wanted = (start, start + len(lit.group(1)))
        elif _QUOTED_KEY_LINE.match(content) and stack and stack[-1][1] in VALUE_MAPPINGS:
            key_lit = _LITERAL.match(content)
            assert key_lit is not None
            rest = content[key_lit.end() + 2 :]
            lit = _LITERAL.fullmatch(rest)
            if lit:
                start = offset + indent + key_lit.end() + 2 + 1
                wanted = (start, start + len(lit.group(1)))
        if wanted is not None:
            s, e = wanted
            pos = s
            for t in _TEMPLATE.finditer(text, s, e):
                if t.start() > pos:
                    spans.append((pos, t.start()))
                pos = t.end()
            if pos < e:
                spans.append((pos, e))
        offset += len(line)
    return spans


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _occurrences(text: str, needle: str) -> list[int]:
    out = []
    i = text.find(needle)
    while i >= 0:
        out.append(i)
        i = text.find(needle, i + 1)
    return out


def _word_in(needle: str, haystack: str) -> bool:
    """``needle`` occurs in ``haystack`` not glued to word characters on its word-ish ends."""
    for s in _occurrences(haystack, needle):
        e = s + len(needle)
        if (_is_word(needle[0]) and s > 0 and _is_word(haystack[s - 1])) or (
            _is_word(needle[-1]) and e < len(haystack) and _is_word(haystack[e])
        ):
            continue
        return True
    return False


def rebind(text: str, old: Mapping[str, Any], new: Mapping[str, Any], *, reserved: str = "") -> RebindResult:
    """Replace the old context values in ``text`` by the new ones, or refuse.

    Args:
        text: canonical subgraph text generated with the ``old`` values.
        old: context values the text was generated with.
        new: context values of the current request (same variable names and types).
        reserved: text the model saw besides the values (the prompt without its
            values line: goal, tools, library, rules). An old value that also occurs
            there may have been copied from it rather than from the variable, so its
            rebinding is refused.

    Returns:
        RebindResult with the new text (the input itself when no value occurs), how
        many occurrences were replaced, and, when ``text`` is None, why not.
    """
    changed = sorted(k for k in set(old) | set(new) if k not in old or k not in new or not _same(old[k], new[k]))
    spans = _value_spans(text)
    edits: list[tuple[int, int, str, str]] = []  # start, end, replacement, variable
    for k in changed:
        if k not in old:
            continue  # a value the text was not generated with cannot occur in it
        r_old = _render(old[k])
        if r_old is None:
            if _render(new.get(k)) is None and json.dumps(old[k]) in text:
                return RebindResult(None, 0, f"structured value of {k!r} occurs in the subgraph")
            continue
        if r_old == "":
            return RebindResult(None, 0, f"old value of {k!r} is empty; its uses cannot be found")
        found = _occurrences(text, r_old)
        if not found:
            continue
        if k not in new:
            return RebindResult(None, 0, f"{k!r} has no value now but its old value occurs")
        r_new = _render(new[k])
        if r_new is None:
            return RebindResult(None, 0, f"new value of {k!r} is not a scalar")
        for j, v in old.items():
            r_j = _render(v) if j != k else None
            if r_j is None:
                continue
            if r_j == r_old:
                return RebindResult(None, 0, f"{k!r} and {j!r} share the value that occurs")
            # "2" inside the city "2 Rue X": that occurrence may belong to either value
            inside = [(t, t + len(r_j)) for t in _occurrences(text, r_j)]
            if any(a <= f and f + len(r_old) <= b for f in found for a, b in inside):
                return RebindResult(None, 0, f"old value of {k!r} occurs inside the value of {j!r}")
        if reserved and _word_in(r_old, reserved):
            return RebindResult(None, 0, f"old value of {k!r} also occurs in the prompt itself")
        for s in found:
            e = s + len(r_old)
            if not any(a <= s and e <= b for a, b in spans):
                return RebindResult(None, 0, f"old value of {k!r} occurs outside a value string")
            if (_is_word(r_old[0]) and s > 0 and _is_word(text[s - 1])) or (
                _is_word(r_old[-1]) and e < len(text) and _is_word(text[e])
            ):
                return RebindResult(None, 0, f"old value of {k!r} occurs inside a longer word")
            edits.append((s, e, r_new, k))
    if not edits:
        return RebindResult(text, 0, "no old value occurs")
    edits.sort()
    for (_s1, e1, _, k1), (s2, _, _, k2) in zip(edits, edits[1:], strict=False):
        if s2 < e1:
            return RebindResult(None, 0, f"values of {k1!r} and {k2!r} overlap in the subgraph")
    parts = []
    pos = 0
    for s, e, rep, _ in edits:
        parts.append(text[pos:s])
        parts.append(rep)
        pos = e
    parts.append(text[pos:])
    return RebindResult("".join(parts), len(edits), "rebound")
