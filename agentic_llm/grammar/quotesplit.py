"""Quote tokens inside a string the ``agenticrt`` target checks, decided in groups.

Inside a string whose content could still close as a value the reference runtime
misreads (``""``, ``"2"``, ``"true"``: ``Slot.close_check``), every token holding a
quote or a newline is checked against the whole line. At a string's opening quote
that is a few hundred tokens of a 151k vocabulary, each a full line check. This
module splits those checks along the token's closing quote.

For a line whose only live line kind is a free value (``free``, an ``assign`` entry
after its key, a tool argument after its key, an ``output_keys`` list), the text
before the string's opening quote is already written, every template in it is complete, and the string is open with raw content
``r``. A token ``x"y`` whose ``x`` (the part before its closing quote, escapes
followed as ``runtime.string_spans`` follows them) holds no brace and no newline
makes the line ``L + x + '"' + y``; ``line_ok`` of that line and the next line state
after it (when ``y`` holds a newline) read ``x`` only as the content of the string it
closes. So the token is allowed exactly when

- the closed string ``r + x`` reaches the runtime as a string (``closes_as_string``),
  a function of ``r + x`` alone (true for every ``x`` once ``r`` holds a character
  no number or boolean holds: ``surely_string``), and
- the line with any such ``x`` and this ``y`` passes: a verdict per ``y``, taken once
  on one member of the group. Up to its first newline, a ``y`` without a quote or a
  brace adds nothing the line check reads (no string, no template), so such ``y``
  share one group with ``""`` followed by the same newline and rest.

A token without a brace or a newline that only escapes quotes (``\\"``) leaves the
string open and adds nothing the line check reads: all such tokens share one
verdict. Tokens with a brace or a newline before their closing quote keep the
per-token check. An ``output_keys`` list is read for its keys by a pattern without
escapes: the grouping holds there for lines and tokens without a backslash, a
closed key must also not be one ``used_keys`` refuses, and a token that finishes
the line stays single (the next line state records the keys).

Outside a string, a token's text up to its first quote (its lead, without a
brace or a newline) is written as it is and the quote opens a string: the token is
decided as its remainder at the line plus the lead, grouped the same way. That
covers the positions that lead into a string (``      "query": `` before ``"``,
``      "query":`` before `` "``), where the same few hundred tokens go on into it.

Why the line check reads nothing else of ``x``: ``string_spans`` resumes after the
closing quote whatever came before it; ``vars_ok`` and ``template_names`` look only at
text from a ``{`` on, and every ``{`` of the written line starts a complete template
(the slot is free); no line kind has a prefix that starts another's, so the line
kind ``apply_line`` takes is the one live kind whatever the token.

The mask computed this way equals the per-token reference
(``DSLMatcher.fill_reference``), which ``verify`` checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from agentic_llm.grammar.graph import COND_PREFIX, GraphPlan, GraphState, options, used_keys
from agentic_llm.grammar.runtime import closes_as_string, string_spans, surely_string

__all__ = ["OpenString", "QuoteGroups", "STILL_OPEN", "open_string", "split_quote", "group_quotes", "quote_rejects",
           "shared_verdicts", "string_rejects"]

_OUTPUT_KEYS = "    output_keys: "
_VALUE_KINDS = ("free", "entry", "argentry", "outkeys")


class OpenString(NamedTuple):
    """The open string at the end of a line: its raw content so far, whether that
    content ends inside an escape (the next character is escaped), and on an
    ``output_keys`` line the keys it may not name (``None``: another line)."""

    raw: str
    escaped: bool
    taken: frozenset[str] | None = None


class QuoteGroups(NamedTuple):
    """Candidates of one position split for ``DSLMatcher``'s fast mask.

    ``bad``: tokens whose closed string the runtime misreads. ``groups``: tokens that
    share one line verdict, each list's first member checked for all. ``single``:
    tokens checked one by one.
    """

    bad: list[int]
    groups: list[list[int]]
    single: list[int]
    braced: frozenset[int] = frozenset()  # grouped tokens with a template in the string
    # per group, what its verdict is shared under along the string (``tail_key`` of
    # what follows the closing quote; ``STILL_OPEN`` for tokens that leave it open);
    # a group without a key is decided at its position only
    keys: tuple[str, ...] = ()


#: the group key of tokens that leave the string open (no ``tail_key`` is this)
STILL_OPEN = "\x00open"


def _value_body(gp: GraphPlan, g: GraphState, line: str) -> tuple[str, bool] | None:
    """The part of ``line`` whose strings the line check reads, and whether it is an
    ``output_keys`` list, when the line is one the grouping holds for (see the
    module docstring), else ``None``."""
    if not gp.strict_strings or g.done:
        return None
    match = None
    for st in options(gp, g):
        if line.startswith(st.prefix):
            if match is not None:
                return None
            match = st
        elif st.prefix.startswith(line):
            return None  # a longer line kind is still possible
    if match is None or match.kind not in _VALUE_KINDS:
        return None
    rest = line[len(match.prefix):]
    if match.prefix == COND_PREFIX and len(rest) < 2:
        return None  # a condition's check reads the character after its quote
    if match.prefix == _OUTPUT_KEYS:
        # its keys are read by a pattern that knows no escapes: none written
        return None if "\\" in rest else (rest, True)
    if match.kind == "argentry":
        if '": ' not in rest:
            return None
        return '"' + rest, False  # the prefix opened the key's quote
    if match.kind == "entry" and (not rest.startswith('"') or rest.find('"', 1) < 0):
        return None  # the key is not closed yet
    return rest, False


def open_string(gp: GraphPlan, g: GraphState, line: str) -> OpenString | None:
    """The open string of ``line`` when its quote tokens may be decided in groups
    (see the module docstring), else ``None``."""
    vb = _value_body(gp, g, line)
    raw = None if vb is None else string_spans(vb[0])[1]
    if vb is None or raw is None or "\n" in raw:
        return None
    i, n = 0, len(raw)
    while i < n:
        i += 2 if raw[i] == "\\" else 1
    return OpenString(raw, i > n, used_keys(gp, g) if vb[1] else None)


def split_quote(tok: str, escaped: bool) -> tuple[str, str | None] | None:
    """``(x, y)``: ``tok`` as the rest ``x`` of an open string, its closing quote and
    what follows (``y`` is ``None`` when ``tok`` does not close the string: it only
    escapes quotes); ``None`` when ``x`` holds a newline (such tokens are checked
    whole)."""
    j, n = (1 if escaped else 0), len(tok)
    while j < n and tok[j] != '"':
        j += 2 if tok[j] == "\\" else 1
    x = tok[:j]
    if "\n" in x:
        return None
    return (x, None) if j >= n else (x, tok[j + 1:])


def tail_key(y: str) -> str:
    """The group of a token by what follows its closing quote: up to the first newline,
    text without a quote or a brace is read by no line check and is dropped."""
    head, nl, after = y.partition("\n")
    if '"' in head or "{" in head:
        return y
    return nl + after


def group_quotes(texts: list[str], cand: list[int], s: OpenString, lead: str = "",
                 safe: bool = False, braces: bool = False) -> QuoteGroups:
    """Split the candidate tokens ``cand`` at the open string ``s``; with ``lead``, the
    tokens are read after that text (the tokens that do not start with it are checked
    one by one); ``safe``: ``s`` closes as a string whatever closes it; ``braces``:
    the caller knows which brace tokens the line's template names allow."""
    bad: list[int] = []
    groups: dict[str, list[int]] = {}
    single: list[int] = []
    still_open: list[int] = []
    braced: list[int] = []
    raw, k, taken = s.raw, len(lead), s.taken
    for tid in cand:
        t = texts[tid]
        xy = split_quote(t[k:], s.escaped) if t.startswith(lead) else None
        if xy is not None and "{" in xy[0]:
            # A template in the string (which then closes as a string): the line's
            # own templates are complete, so the line check reads the token's braces
            # as ``vars_ok`` of the token alone, which the caller knows; grouped when
            # what follows the quote holds no brace and no newline.
            y = xy[1]
            if not braces or taken is not None or y is not None and ("{" in y or "\n" in y):
                single.append(tid)
            else:
                braced.append(tid)
                (still_open if y is None else groups.setdefault(tail_key(y), [])).append(tid)
        elif xy is None or taken is not None and ("\\" in xy[0] or xy[1] is None or "\n" in xy[1]):
            single.append(tid)  # on a keys line: escapes, and the state after the line
        elif xy[1] is None:
            still_open.append(tid)
        elif not safe and not closes_as_string(raw + xy[0]) or taken and raw + xy[0] in taken:
            bad.append(tid)
        else:
            groups.setdefault(tail_key(xy[1]), []).append(tid)
    out = list(groups.values())
    keys = list(groups)
    if still_open:
        out.append(still_open)
        keys.append(STILL_OPEN)
    return QuoteGroups(bad, out, single, frozenset(braced), tuple(keys))


def shared_verdicts(g: GraphState, text: str, s: OpenString) -> dict[str, bool] | None:
    """The group verdicts of the string open at the end of ``text`` (a line, or a
    line and a token's lead), kept on the line state for every position of that
    string: ``None`` where they may not be shared.

    A group's verdict is the line check of ``P + r + x + '"' + y`` (``P``: the text
    up to the string's opening quote, ``r + x``: the content, ``y``: the group's
    tail), which reads the content only as the content of a closed string
    (``closes_as_string``, the taken keys: both decided per token in ``bad``). So
    every position of one string, the lead into it included, shares the verdict of
    each tail, as long as the content holds no brace (a template there can change
    the state after the line, ``GraphState.relied``)."""
    if "{" in s.raw:
        return None
    key = ("quote_verdicts", text[: len(text) - len(s.raw)], s.escaped, s.taken)
    hit = g.memo.get(key)
    if hit is None:
        hit = g.memo[key] = {}
    return hit  # type: ignore[no-any-return]


def quote_rejects(memo: dict[Any, Any], tag: Any, texts: list[str], cand: list[int],
                  s: OpenString | None, ok: Callable[[int], bool], row: np.ndarray | None = None,
                  lead: str = "", braces: np.ndarray | None = None,
                  shared: dict[str, bool] | None = None) -> list[int]:
    """The tokens of ``cand`` rejected where ``lead`` leads into the open string ``s``
    (``lead`` empty: the line is in it; ``s`` ``None``: no grouping holds, each token
    is checked). The grouping is kept in ``memo`` under ``tag``, which names ``cand``
    (a list derived from the memo's mask row). ``ok`` is the exact per-token check at
    the position; tokens already cleared in ``row`` need no verdict. ``braces``: the
    brace tokens the line's template names allow (``VocabIndex.brace_ok_bits``); the
    line's own templates are complete, so ``vars_ok`` of the line reads a token's
    braces as ``vars_ok`` of the token, and a token outside ``braces`` is rejected.
    ``shared``: the group verdicts of this string (``shared_verdicts``), read and
    filled by group key."""
    if s is None:
        mv = row.data if row is not None else None
        return [t for t in cand if (mv is None or (mv[t >> 5] >> (t & 31)) & 1) and not ok(t)]
    # a content no closing can misread groups like every other such content
    safe = surely_string(s.raw)
    known = row is not None or braces is not None  # which brace tokens the names allow
    key = ("quote_groups", tag, (s.escaped, s.taken) if safe else s, lead, known)
    qg = memo.get(key)
    if qg is None:
        qg = memo[key] = group_quotes(texts, cand, s, lead, safe, known)
    bad = list(qg.bad)
    # ``row`` has the brace tokens the names refuse cleared already; with ``braces``
    # they are rejected here
    mv = row.data if row is not None else None
    bb = braces.data if braces is not None else None
    braced = qg.braced if bb is not None else frozenset()
    bad += [t for t in braced if not (bb[t >> 5] >> (t & 31)) & 1]  # type: ignore[index]
    keys = qg.keys if shared is not None else ()
    for i, grp in enumerate(qg.groups):
        rep = next((t for t in grp if (mv is None or (mv[t >> 5] >> (t & 31)) & 1)
                    and (t not in braced or (bb[t >> 5] >> (t & 31)) & 1)), None)  # type: ignore[index]
        if rep is None:
            continue
        if i < len(keys):
            v = shared.get(keys[i])  # type: ignore[union-attr]
            if v is None:
                v = shared[keys[i]] = ok(rep)  # type: ignore[index]
        else:
            v = ok(rep)
        if not v:
            bad += grp
    for t in qg.single:
        if mv is not None and not (mv[t >> 5] >> (t & 31)) & 1:
            continue
        if (bb is not None and not (bb[t >> 5] >> (t & 31)) & 1 and "{" in texts[t]
                and "\n" not in texts[t]) or not ok(t):
            bad.append(t)
    return bad


def string_rejects(memo: dict[Any, Any], tag: Any, texts: list[str], cand: list[int], gp: GraphPlan,
                   g: GraphState, line: str, ok: Callable[[int], bool],
                   row: np.ndarray) -> list[int] | None:
    """``quote_rejects`` at a free position of the line ``line``: inside a string, or
    outside one, where each token's text up to its first quote (its lead, without a
    brace or a newline) leads into the string that quote opens; ``None`` where no
    grouping holds."""
    s = open_string(gp, g, line)
    if s is not None:
        return quote_rejects(memo, tag, texts, cand, s, ok, row, shared=shared_verdicts(g, line, s))
    vb = _value_body(gp, g, line)
    if vb is None or string_spans(vb[0])[1] is not None:
        return None
    key = ("quote_leads", tag)
    leads = memo.get(key)
    if leads is None:
        by: dict[str, list[int]] = {}
        single: list[int] = []
        for tid in cand:
            t = texts[tid]
            q = t.find('"')
            if q < 0 or "{" in t[:q] or "\n" in t[:q]:
                single.append(tid)
            else:
                by.setdefault(t[:q + 1], []).append(tid)
        leads = memo[key] = (by, single)
    bad = quote_rejects(memo, key, texts, leads[1], None, ok, row)
    for lead, tids in leads[0].items():
        s = open_string(gp, g, line + lead)
        bad += quote_rejects(memo, (key, lead), texts, tids, s, ok, row, lead,
                             shared=None if s is None else shared_verdicts(g, line + lead, s))
    return bad
