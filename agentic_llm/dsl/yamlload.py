"""Loading one block's YAML safely: caps on nesting and alias expansion, and a map
from each value's position to its source line.

PyYAML's composer recurses once per nesting level and its constructor shares aliased
objects, so a deep or alias-heavy input could overflow the stack or explode when
walked. Values are built here straight from the (iterative) event stream instead:
nesting is checked before parsing (``yamldepth``: a library's own cap never decides
the error code) and exactly as collections open, every alias use counts the values
it stands for, and the caps stop a hostile block long before it costs time or memory.
"""

from __future__ import annotations

from typing import Any

import yaml

from agentic_llm.dsl.diagnostics import Diagnostic, Severity
from agentic_llm.dsl.limits import ParseLimits
from agentic_llm.dsl.yamldepth import first_line_too_deep
from agentic_llm.errors import ErrorCode

__all__ = ["YamlProblem", "load_block_yaml", "LineMap"]

LineMap = dict[tuple[Any, ...], int]

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:str",
}


_TEXT_TAGS = {
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:binary",
    "tag:yaml.org,2002:merge",
}


class YamlProblem(Exception):
    """A block's YAML could not be loaded; carries the diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _problem(code: ErrorCode, message: str, path: str, line: int | None) -> YamlProblem:
    return YamlProblem(Diagnostic(code, Severity.ERROR, message, path, line))


_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_COLLECTION_TAGS = {None, "!", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}


class _Frame:
    """An open mapping or sequence while its events arrive."""

    __slots__ = ("value", "key", "pending", "anchor", "start_count", "event")

    def __init__(
        self, value: Any, key: tuple[Any, ...], anchor: str | None, count: int, event: yaml.Event
    ) -> None:
        self.event = event  # the start event: where the collection begins
        self.value = value
        self.key = key
        self.pending: str | None = None
        self.anchor = anchor
        self.start_count = count


class _Builder:
    def __init__(self, limits: ParseLimits, path: str, offset: int) -> None:
        self.limits = limits
        self.path = path
        self.offset = offset
        self.count = 0
        self.aliases = 0
        self.docs = 0
        self.lines: LineMap = {}
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []
        self.root: Any = None

    def fail(self, code: ErrorCode, message: str, event: yaml.Event) -> YamlProblem:
        return _problem(code, message, self.path, self.line(event))

    def grow(self, n: int, event: yaml.Event) -> None:
        self.count += n
        if self.count > self.limits.max_values:
            raise self.fail(
                ErrorCode.INPUT_TOO_LARGE,
                f"block expands to more than {self.limits.max_values} YAML values "
                "(aliases count at every use)",
                event,
            )

    def child_key(self, event: yaml.Event) -> tuple[Any, ...] | None:
        """Key path of the value that starts with ``event``; None for a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.key, len(top.value))
        if top.pending is None:
            return None
        return (*top.key, top.pending)

    def line(self, event: yaml.Event) -> int:
        mark = event.start_mark
        return self.offset + (mark.line if mark is not None else 0)

    def place(self, value: Any, event: yaml.Event, is_scalar: bool) -> None:
        line = self.line(event)
        if not self.stack:
            self.root = value
            self.lines[()] = line
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            self.lines[(*top.key, len(top.value))] = line
            top.value.append(value)
        elif top.pending is None:
            if not is_scalar:
                raise self.fail(ErrorCode.YAML, "mapping keys must be plain strings", event)
            name = str(value)
            if name in top.value:
                raise self.fail(ErrorCode.YAML, f"duplicate key {name!r}", event)
            self.lines[(*top.key, name)] = line
            top.pending = name
        else:
            top.value[top.pending] = value
            top.pending = None

    def scalar(self, event: yaml.ScalarEvent) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag in _TEXT_TAGS:
            # dates, base64, the merge key: keep the text as written
            return event.value
        if tag not in _PLAIN_TAGS:
            raise self.fail(
                ErrorCode.YAML, f"YAML tag {tag!r} is not allowed; remove the tag", event
            )
        node = yaml.ScalarNode(tag, event.value, style=event.style)
        try:
            return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise self.fail(ErrorCode.YAML, f"bad scalar {event.value!r}: {exc}", event) from None

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.ScalarEvent):
            self.grow(1, event)
            top = self.stack[-1] if self.stack else None
            is_key = top is not None and isinstance(top.value, dict) and top.pending is None
            value = event.value if is_key else self.scalar(event)
            if event.anchor is not None:
                self.anchors[event.anchor] = (value, 1)
            self.place(value, event, True)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(self.stack) >= self.limits.max_depth:
                raise self.fail(
                    ErrorCode.NESTING_TOO_DEEP,
                    f"YAML nests deeper than {self.limits.max_depth} levels",
                    event,
                )
            if event.tag not in _COLLECTION_TAGS:
                raise self.fail(
                    ErrorCode.YAML, f"YAML tag {event.tag!r} is not allowed; remove the tag", event
                )
            key = self.child_key(event)
            if key is None:
                raise self.fail(ErrorCode.YAML, "mapping keys must be plain strings", event)
            self.grow(1, event)
            container: Any = [] if isinstance(event, yaml.SequenceStartEvent) else {}
            self.stack.append(_Frame(container, key, event.anchor, self.count, event))
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = self.stack.pop()
            if frame.anchor is not None:
                self.anchors[frame.anchor] = (frame.value, self.count - frame.start_count + 1)
            self.place(frame.value, frame.event, False)
        elif isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > self.limits.max_aliases:
                raise self.fail(
                    ErrorCode.INPUT_TOO_LARGE,
                    f"more than {self.limits.max_aliases} YAML alias uses in one block",
                    event,
                )
            if event.anchor not in self.anchors:
                raise self.fail(ErrorCode.YAML, f"unknown alias *{event.anchor}", event)
            shared, size = self.anchors[event.anchor]
            self.grow(size, event)
            self.place(shared, event, not isinstance(shared, dict | list))
        elif isinstance(event, yaml.DocumentStartEvent):
            self.docs += 1
            if self.docs > 1:
                raise self.fail(
                    ErrorCode.YAML,
                    "a block holds one YAML document; remove the '---' separator",
                    event,
                )


def load_block_yaml(
    text: str, limits: ParseLimits, path: str, first_line: int
) -> tuple[Any, LineMap]:
    """Load a block's YAML; returns the value and a map from key paths to file lines.

    Raises:
        YamlProblem: bad YAML, or a cap exceeded.
    """
    deep = first_line_too_deep(text, limits.max_depth)
    if deep is not None:
        # ours, before the parser: a library's own nesting cap must not decide the code
        raise _problem(
            ErrorCode.NESTING_TOO_DEEP,
            f"YAML nests deeper than {limits.max_depth} levels",
            path,
            first_line + deep,
        )
    builder = _Builder(limits, path, first_line)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except YamlProblem:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            line: int | None = first_line + mark.line
        elif isinstance(getattr(exc, "position", None), int):
            line = first_line + text.count("\n", 0, exc.position)  # type: ignore[attr-defined]
        else:
            line = None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _problem(ErrorCode.YAML, f"invalid YAML: {problem}", path, line) from None
    return builder.root, builder.lines if builder.root is not None else {}
