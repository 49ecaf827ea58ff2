"""How the reference runtime finds blocks in Markdown.

Models ``extract_pathed_blocks`` and ``is_valid_node_path``
(``src/common/utils/parser_utils.cpp``). The reference matches one ECMAScript
``std::regex`` over the document's bytes; in the C locale ``\\s`` and ``\\w`` are
ASCII only, which a Python bytes pattern reproduces. Consequences:

- the heading must be ``#`` + whitespace + ``AgenticDSL`` + whitespace + a path in
  backticks; a path in single quotes is not a block;
- the fence must be ```` ``` ```` or ```` ```yaml ````, then the BEGIN marker line, and
  the body must end with a newline, the END marker line and a closing fence; a block
  without markers is not a block;
- the YAML is cut from the first BEGIN marker to the *first* END marker inside the
  match, and an empty body lets the lazy body run on to the next block's END marker:
  that next block is swallowed;
- the lazy body recurses once per byte in libstdc++'s regex executor: a body of about
  27 KB overflows an 8 MiB stack (measured: 27,000 bytes pass, 28,000 crash, -O0 build).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

__all__ = [
    "RefBlock",
    "REGEX_STACK_LIMIT_BYTES",
    "extract_reference_blocks",
    "is_valid_node_path",
    "longest_regex_scan",
]

_BLOCK = re.compile(
    rb"#\s+AgenticDSL\s+`([^`]+)`\s*\n"
    rb"```(?:yaml)?\s*\n"
    rb"# --- BEGIN AgenticDSL ---\s*\n"
    rb"[\s\S]*?"
    rb"\n# --- END AgenticDSL ---\s*\n"
    rb"```"
)
# Everything the pattern needs before its lazy body; used to measure the body scans.
_HEAD = re.compile(
    rb"#\s+AgenticDSL\s+`([^`]+)`\s*\n```(?:yaml)?\s*\n# --- BEGIN AgenticDSL ---\s*\n"
)
_END = re.compile(rb"\n# --- END AgenticDSL ---\s*\n```")
_VALID_PATH = re.compile(rb"/[\w/\-]+")
_BEGIN = b"# --- BEGIN AgenticDSL ---"
_END_MARK = b"# --- END AgenticDSL ---"

# Bodies at or above this many bytes are refused: the reference crashed from 28,000
# bytes on with an 8 MiB stack; a smaller stack or a larger frame crashes sooner.
REGEX_STACK_LIMIT_BYTES = 24_000


@dataclass(frozen=True)
class RefBlock:
    """One block as the reference cuts it: the path text and the YAML between markers."""

    path: str
    yaml: str
    line: int


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def extract_reference_blocks(text: str) -> list[RefBlock]:
    """The (path, YAML) pairs ``extract_pathed_blocks`` returns, in order."""
    data = text.encode("utf-8", errors="surrogateescape")
    blocks: list[RefBlock] = []
    line, counted = 1, 0
    for match in _BLOCK.finditer(data):
        full = match.group(0)
        begin = full.find(_BEGIN)
        end = full.find(_END_MARK)
        start = full.find(b"\n", begin) + 1
        body = full[start:end]  # the reference's substr(start, end_pos - start)
        if body.endswith(b"\n"):
            body = body[:-1]
        line += data.count(b"\n", counted, match.start())
        counted = match.start()
        blocks.append(RefBlock(_text(match.group(1)), _text(body), line))
    return blocks


def is_valid_node_path(path: str) -> bool:
    """``is_valid_node_path``: ``/`` then ASCII word characters, ``/`` and ``-`` only."""
    return _VALID_PATH.fullmatch(path.encode("utf-8", errors="surrogateescape")) is not None


def longest_regex_scan(text: str) -> tuple[int, int]:
    """The longest run of bytes the pattern's lazy body walks through, and the line
    where that walk starts.

    Every place where heading, fence and BEGIN line match starts a walk that lasts
    until the next END marker and closing fence (or the end of the text).
    """
    data = text.encode("utf-8", errors="surrogateescape")
    ends = [m.start() for m in _END.finditer(data)]
    longest, where = 0, 0
    for head in _HEAD.finditer(data):
        i = bisect.bisect_left(ends, head.end() - 1)
        stop = ends[i] if i < len(ends) else len(data)
        if stop - head.end() > longest:
            longest = stop - head.end()
            where = data.count(b"\n", 0, head.start()) + 1  # rare: only on a new maximum
    return longest, where
