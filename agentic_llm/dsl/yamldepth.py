"""How deep a block's YAML nests, read from the text before any YAML parser sees it.

YAML libraries cap nesting on their own, at depths and with messages that change
between releases (libyaml 0.2.5 as bundled with PyYAML 6.0.4 stops at 1,000 levels with
"exceeded maximum nesting depth", older builds recurse until the stack runs out). A
block nested past ``ParseLimits.max_depth`` must be refused with
``ERR_NESTING_TOO_DEEP`` whatever the library does, so this scan runs first.

The scan is a lower bound: it counts only levels that surely open a collection (a
block mapping key or sequence entry at a deeper column, a flow ``[`` or ``{`` outside
quotes, comments, block scalars and continued plain scalars), so a document it passes
may still nest too deep and is then caught, exactly, as the parser's events arrive.
"""

from __future__ import annotations

__all__ = ["first_line_too_deep"]

_FLOW_OPEN = "[{"
_FLOW_CLOSE = "]}"
_QUOTES = "'\""
_AFTER_WHICH_A_QUOTE_OPENS = "[{,:?"


class _Scan:
    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.levels: list[int] = []  # columns of the open block collections
        self.flow = 0  # open flow collections
        self.quote = ""  # the quote character of a quoted scalar still open
        self.prev = ""  # last significant character in flow context
        self.block_scalar_parent: int | None = None  # skip lines indented deeper
        self.plain_parent: int | None = None  # a plain scalar may continue deeper

    def too_deep(self) -> bool:
        return len(self.levels) + self.flow > self.max_depth

    def push(self, column: int) -> bool:
        if not self.levels or column > self.levels[-1]:
            self.levels.append(column)
        return self.too_deep()

    def owner(self) -> int:
        return self.levels[-1] if self.levels else -1

    def line(self, line: str) -> bool:
        """Reads one line; True when nesting has gone past the cap."""
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if self.block_scalar_parent is not None:
            if not stripped.strip() or indent > self.block_scalar_parent:
                return False
            self.block_scalar_parent = None
        if self.quote or self.flow:
            return self.chars(line, 0)
        if not stripped.strip() or stripped.startswith("#"):
            return False
        if self.plain_parent is not None and indent > self.plain_parent:
            return False  # the continuation of a multi-line plain scalar
        self.plain_parent = None
        if stripped[:3] in ("---", "...") and stripped[3:4] in ("", " ", "\t"):
            self.levels.clear()
            return False
        while self.levels and self.levels[-1] > indent:
            self.levels.pop()
        return self.block(line, indent)

    def block(self, line: str, p: int) -> bool:
        """Block context from column ``p``: sequence dashes, a key, then its value."""
        n = len(line)
        owner = self.owner()
        while line.startswith("-", p) and (p + 1 == n or line[p + 1] in " \t"):
            if self.push(p):
                return True
            owner = p
            p = _skip_spaces(line, p + 1)
        keyed = False
        while p < n:
            c = line[p]
            if c == "#":
                return False
            if c in "&!":  # an anchor or a tag before the value
                p = _skip_spaces(line, _token_end(line, p))
                continue
            if c in _FLOW_OPEN:
                return self.chars(line, p)
            if c in "|>":
                self.block_scalar_parent = owner
                return False
            if c in _QUOTES:
                start, end = p, _quote_end(line, p + 1, c)
                if end < 0:
                    self.quote = c
                    return False
                p = _skip_spaces(line, end + 1)
                if keyed or not _colon_at(line, p):
                    return False
                if self.push(start):
                    return True
                owner, keyed = self.levels[-1], True
                p = _skip_spaces(line, p + 1)
                continue
            colon = -1 if keyed else _plain_key_colon(line, p)
            if colon < 0:
                self.plain_parent = owner
                return False
            if self.push(p):
                return True
            owner, keyed = p, True
            p = _skip_spaces(line, colon + 1)
        return False

    def chars(self, line: str, p: int) -> bool:
        """Flow context or a quoted scalar, character by character."""
        n = len(line)
        while p < n:
            c = line[p]
            if self.quote:
                if c == "\\" and self.quote == '"':
                    p += 2
                    continue
                if c == self.quote:
                    if self.quote == "'" and line.startswith("'", p + 1):
                        p += 2
                        continue
                    self.quote, self.prev = "", c
                    if not self.flow:
                        return False
            elif c == "#" and (p == 0 or line[p - 1] in " \t"):
                return False
            elif c in _FLOW_OPEN:
                self.flow += 1
                self.prev = c
                if self.too_deep():
                    return True
            elif c in _FLOW_CLOSE:
                self.flow = max(0, self.flow - 1)
                self.prev = c
                if not self.flow:
                    return False
            elif c in _QUOTES and (not self.prev or self.prev in _AFTER_WHICH_A_QUOTE_OPENS):
                self.quote = c
            elif c not in " \t":
                self.prev = c
            p += 1
        return False


def _skip_spaces(line: str, p: int) -> int:
    while p < len(line) and line[p] in " \t":
        p += 1
    return p


def _token_end(line: str, p: int) -> int:
    while p < len(line) and line[p] not in " \t":
        p += 1
    return p


def _quote_end(line: str, p: int, quote: str) -> int:
    """Index of the quote that closes a scalar opened before ``p``; -1 if not on this line."""
    while p < len(line):
        c = line[p]
        if c == "\\" and quote == '"':
            p += 2
            continue
        if c == quote:
            if quote == "'" and line.startswith("'", p + 1):
                p += 2
                continue
            return p
        p += 1
    return -1


def _colon_at(line: str, p: int) -> bool:
    return line.startswith(":", p) and (p + 1 == len(line) or line[p + 1] in " \t")


def _plain_key_colon(line: str, p: int) -> int:
    """Index of the ``:`` that ends a plain mapping key starting at ``p``; -1 if none."""
    n = len(line)
    while p < n:
        c = line[p]
        if c == "#" and line[p - 1] in " \t":
            return -1
        if c == ":" and (p + 1 == n or line[p + 1] in " \t"):
            return p
        p += 1
    return -1


def first_line_too_deep(text: str, max_depth: int) -> int | None:
    """0-based line where the text surely nests deeper than ``max_depth``; None otherwise."""
    scan = _Scan(max_depth)
    for number, line in enumerate(text.split("\n")):
        if scan.line(line.rstrip("\r")):
            return number
    return None
