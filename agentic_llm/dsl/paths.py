"""The one rule for node paths: ASCII letters, digits, ``_`` and ``-`` per segment.

The planner (target and library paths), the grammar (the ``path`` rule every
reference and the heading use) and the validator (block paths) all read their path
syntax from here, so a path one of them accepts is never refused by another: a
target such as ``/dynamic/plan_日本`` is refused at planning, before any model work,
instead of failing inside the grammar.
"""

from __future__ import annotations

import re

__all__ = [
    "PATH_CHAR_CLASS",
    "PATH_REF_CHAR_CLASS",
    "PATH_SEGMENT",
    "PATH_RE",
    "VERSIONED_PATH_RE",
    "is_path",
    "non_ascii_path",
]

#: One character of a path segment, as a regex / EBNF character class.
PATH_CHAR_CLASS = r"[A-Za-z0-9_\-]"
#: Any character after the first of a reference in generated text (segments, ``/``,
#: ``@v1`` version suffixes, ``.``), as an EBNF character class.
PATH_REF_CHAR_CLASS = r"[A-Za-z0-9_/@.\-]"
PATH_SEGMENT = PATH_CHAR_CLASS + "+"
#: An absolute block path: ``/seg(/seg)*``, ASCII only.
PATH_RE = re.compile(rf"/{PATH_SEGMENT}(?:/{PATH_SEGMENT})*", re.ASCII)
#: A reference target, which may carry a version suffix (``/lib/x@v1``).
VERSIONED_PATH_RE = re.compile(rf"/{PATH_SEGMENT}(?:/{PATH_SEGMENT})*(?:@v[0-9]+)?", re.ASCII)


def is_path(text: str) -> bool:
    """True when ``text`` is a well-formed absolute block path."""
    return PATH_RE.fullmatch(text) is not None


def non_ascii_path(text: str) -> bool:
    """True when ``text`` holds a character outside ASCII (refused as a path)."""
    return not text.isascii()
