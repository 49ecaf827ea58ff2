"""What the target runtime reads back from the strings the grammar writes.

For the ``agenticrt`` target (the reference AgenticDSL runtime) every string must
reach the runtime as a string: its YAML reading ignores quotes
(``agentic_llm.dsl.conformance.scalars``), so ``""``, ``"2"``, ``"true"`` or
``" 12"`` would become null, a number or a boolean. The graph layer uses these
helpers on the raw text of a line (the latin-1 view of its UTF-8 bytes, canonical
escapes still written) to refuse a closing quote after such a content, and to know
when a quote token needs that check at all (only while the content so far could
still become such a value).
"""

from __future__ import annotations

import re
from functools import lru_cache

from agentic_llm.dsl.conformance.scalars import reads_as_string
from agentic_llm.dsl.dump import MAX_BLOCK_BYTES  # the block size cap of the agenticrt target

__all__ = ["string_spans", "closes_as_string", "could_misread", "surely_string", "MAX_BLOCK_BYTES", "RUNTIMES"]

#: target runtimes a plan may name
RUNTIMES = ("agenticrt", "spec")

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}
# a prefix of a text the reference reads as a number: the stream's leading
# whitespace, an optional sign, digits with at most one point, an exponent
_NUMBER_PREFIX = re.compile(
    r"[ \t\n\v\f\r]*(?:[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d*)?|\.(?:\d+(?:[eE][+-]?\d*)?)?)?)?")
_WORDS = ("true", "false", "~")


def string_spans(rest: str) -> tuple[list[str], str | None]:
    """The quoted strings of ``rest`` (raw contents, escapes kept): those closed, and
    the content of the one still open at the end (``None``: none open)."""
    closed: list[str] = []
    i, n = 0, len(rest)
    while i < n:
        if rest[i] != '"':
            i += 1
            continue
        j = i + 1
        while j < n and rest[j] != '"':
            j += 2 if rest[j] == "\\" else 1
        if j >= n:
            return closed, rest[i + 1:]
        closed.append(rest[i + 1:j])
        i = j + 1
    return closed, None


def _decode(raw: str) -> str:
    """The value of a raw string content (canonical escapes, latin-1 view of UTF-8);
    an unfinished escape or character at the end is dropped."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            break
        e = raw[i + 1]
        if e == "u":
            if i + 6 > n:
                break
            try:
                out.append(chr(int(raw[i + 2:i + 6], 16)).encode("utf-8", "replace").decode("latin-1"))
            except ValueError:
                out.append("?")
            i += 6
            continue
        out.append(_ESCAPES.get(e, e))
        i += 2
    return "".join(out).encode("latin-1", "replace").decode("utf-8", "replace")


# Masks inside a line re-check the line's closed strings once per candidate token:
# the verdict is a pure function of the raw content, kept for the most recent ones.
@lru_cache(maxsize=16384)
def closes_as_string(raw: str) -> bool:
    """True when the string with raw content ``raw`` reaches the runtime as a string."""
    if "{" in raw:
        return True  # a template: never a number, boolean or null
    return reads_as_string(_decode(raw))


# ASCII characters that never occur in a number, in ``true``, ``false`` or ``~``, and
# are not whitespace: a value holding one is neither (a ``{`` makes a template)
_NEVER_SCALAR = frozenset(chr(c) for c in range(33, 127)) - frozenset('0123456789+-.eEtruefals~\\"')


def surely_string(raw: str) -> bool:
    """True when every string whose raw content starts with ``raw`` reaches the
    runtime as a string (``closes_as_string`` of ``raw`` plus any text): ``raw`` holds,
    outside its escapes, an ASCII character no number, boolean or null holds. An
    ASCII byte decodes as itself whatever follows, so the value keeps it."""
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\":
            i += 6 if raw[i + 1:i + 2] == "u" else 2
        elif c in _NEVER_SCALAR:
            return True
        else:
            i += 1
    return False


def could_misread(raw: str) -> bool:
    """True when some continuation of the open content ``raw`` would close as a
    value the runtime does not read as a string (so its quote tokens need checking).
    Conservative inside an unfinished escape (it may become whitespace)."""
    if "{" in raw:
        return False
    value = _decode(raw)
    if raw.endswith("\\") or "\\u" in raw[-5:]:
        return True
    return any(w.startswith(value) for w in _WORDS) or _NUMBER_PREFIX.fullmatch(value) is not None
