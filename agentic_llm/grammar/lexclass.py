"""Lexical classes: a cheap key under which xgrammar's token mask repeats.

xgrammar's mask at a position is a function of its parser state. In the generation
profile that state is fixed by where the line sits in the document (header line,
node type and field, repetition) and by the lexical position inside the line: inside
a string at a character boundary the state is the same whatever the string holds so
far, inside a path or a key after its first character likewise, and a reference or
key list looks the same after its second element as after its first. ``mask_key``
folds a line into that class, so the mask computed once for a class serves every
later position of the class, in this request and in every other request that uses
the same compiled grammar.

Positions whose class is not obvious from the text (mid-escape, mid multi-byte
character, unknown line) get ``None`` and are never cached. The classes are checked
against xgrammar's own masks by the matcher's ``verify`` mode, which the tests run
over random walks.
"""

from __future__ import annotations

from typing import Any

from agentic_llm.grammar.graph import GraphPlan, GraphState, options

__all__ = ["mask_key", "string_class", "list_class"]

_RAW_FIELDS = ("    condition: ", "    termination_mode: ")
_OUTPUT_KEYS = "    output_keys: "
_SIMPLE_ESCAPES = frozenset('\\"nrt')


def _utf8_complete(text: str) -> bool:
    """True when the latin-1 view ``text`` does not end inside a multi-byte character."""
    j = len(text) - 1
    k = 0
    while j >= 0 and 0x80 <= ord(text[j]) < 0xC0 and k < 3:
        j -= 1
        k += 1
    if j < 0:
        return k == 0
    lead = ord(text[j])
    if lead < 0x80:
        return k == 0
    need = 1 if lead < 0xE0 else 2 if lead < 0xF0 else 3
    return k == need


def string_class(body: str) -> str | None:
    """Class of ``body``, text that starts at a string's opening quote.

    ``"o"``: nothing yet; ``"s"``: inside the string at a character boundary;
    ``"c<tail>"``: closed, followed by ``tail``; ``None``: mid-escape, mid-character
    or not a string.
    """
    if not body:
        return "o"
    if body[0] != '"':
        return None
    i, n = 1, len(body)
    while i < n:
        c = body[i]
        if c == "\\":
            if i + 1 >= n:
                return None
            e = body[i + 1]
            if e == "u":
                if i + 6 > n:
                    return None
                i += 6
            elif e in _SIMPLE_ESCAPES:
                i += 2
            else:
                return None
            continue
        if c == '"':
            return "c" + body[i + 1:]
        i += 1
    return "s" if _utf8_complete(body) else None


def list_class(rest: str, bracket: bool, elem_first: str) -> tuple[Any, ...] | None:
    """Class of a quoted-element list (``[...]`` when ``bracket``) or a single element.

    Elements fold to their count (capped at 2); a partial element folds to how much of
    it is written: ``q`` (the quote), ``q1`` (its first character, which is the one
    with its own character class: ``/`` for paths, a letter for keys) and ``q2`` (any
    further characters, the repeating class). ``elem_first`` is the fixed first
    character of an element (``"/"`` for paths, ``""`` for keys).
    """
    i, n = 0, len(rest)
    if bracket:
        if n == 0:
            return ("",)
        if rest[0] != "[":
            return None
        i = 1
    count = 0
    state = "open"
    while i < n:
        if state == "open":
            if rest[i] != '"':
                return None
            j = rest.find('"', i + 1)
            if j < 0:
                part = rest[i + 1:]
                if elem_first:
                    if not part.startswith(elem_first):
                        return None if part else (min(count, 2), "q")
                    part = part[len(elem_first):]
                    depth = "q1" if not part else "q2" if len(part) == 1 else "q3"
                else:
                    depth = "q" if not part else "q1" if len(part) == 1 else "q2"
                return (min(count, 2), depth)
            count += 1
            i = j + 1
            state = "after"
            if not bracket:
                return (1, "after", rest[i:])
        elif state == "after":
            if rest[i] == "]":
                return (min(count, 2), "closed", rest[i + 1:])
            if rest.startswith(", ", i):
                i += 2
                state = "open"
            elif rest[i:] == ",":
                return (min(count, 2), "comma")
            else:
                return None
    return (min(count, 2), state)


def _name_class(text: str) -> tuple[Any, ...]:
    """Class of an identifier-like name (id, tool name, argument key) and what
    follows its closing quote: the first character has its own character class,
    later ones repeat one."""
    j = text.find('"')
    if j < 0:
        return ("n", min(len(text), 2))
    return ("c", text[j:])


def _rest_class(kind: str, prefix: str, rest: str) -> tuple[Any, ...] | None:
    if kind == "free":
        if prefix in _RAW_FIELDS:
            return ("raw", rest)
        if prefix == _OUTPUT_KEYS:
            # the key list of the other node types: the same ``keys`` rule as a
            # tool call's (``outkeys``), told apart by the position's ``where``
            kind = "outkeys"
        else:
            c = string_class(rest)
            return None if c is None else ("str", c)
    if kind in ("argentry", "entry"):
        i = rest.find('": ')
        if i < 0:
            if kind == "entry":
                lc = list_class(rest, False, "") if rest else ("",)
                return None if lc is None else ("key",) + lc
            return ("arg",) + _name_class(rest)
        c = string_class(rest[i + 3:])
        return None if c is None else ("val", c)
    if kind == "tool":
        if not rest.startswith('"'):
            return ("raw", rest)
        return ("tool",) + _name_class(rest[1:])
    if kind == "id":
        return ("id",) + _name_class(rest)
    if kind in ("refs", "waits"):
        lc = list_class(rest, True, "/")
        return None if lc is None else ("refs",) + lc
    if kind == "onfail":
        lc = list_class(rest, False, "/") if rest else ("",)
        return None if lc is None else ("ref",) + lc
    if kind == "outkeys":
        lc = list_class(rest, True, "")
        return None if lc is None else ("keys",) + lc
    return ("raw", rest)


def mask_key(gp: GraphPlan, g: GraphState, line: str) -> tuple[Any, ...] | None:
    """A hashable key such that positions with equal keys have equal xgrammar masks
    (for one compiled grammar), or ``None`` when no safe key is known."""
    hit = g.memo.get("where")
    if hit is None or hit[0] is not gp:
        hit = g.memo["where"] = (gp, (g.header, g.done, g.ctype, g.cur != "", g.step, min(g.reps, 1),
                                      gp.signature_line is not None))
    where = hit[1]
    for st in options(gp, g):
        if st.prefix and line.startswith(st.prefix):
            c = _rest_class(st.kind, st.prefix, line[len(st.prefix):])
            return None if c is None else (where, st.prefix) + c
    return (where, "", "raw", line)
