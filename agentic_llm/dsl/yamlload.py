"""Loading one block's YAML safely: caps on nesting and alias expansion, and a map
from each value's position to its source line.

PyYAML's composer recurses once per nesting level and its constructor shares aliased
objects, so a deep or alias-heavy input could overflow the stack or explode when
walked. The event stream is scanned first (iteratively) and rejected past the caps;
only then is the node graph composed and converted, counting every alias use.
"""

from __future__ import annotations

from typing import Any

import yaml

from agentic_llm.dsl.diagnostics import Diagnostic, Severity
from agentic_llm.dsl.limits import ParseLimits
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


def _prescan(text: str, limits: ParseLimits, path: str, offset: int) -> None:
    depth = 0
    aliases = 0
    docs = 0
    for events, event in enumerate(yaml.parse(text, Loader=_Loader), 1):
        line = offset + event.start_mark.line if event.start_mark is not None else None
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > limits.max_depth:
                raise _problem(
                    ErrorCode.NESTING_TOO_DEEP,
                    f"YAML nests deeper than {limits.max_depth} levels",
                    path,
                    line,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise _problem(
                    ErrorCode.INPUT_TOO_LARGE,
                    f"more than {limits.max_aliases} YAML alias uses in one block",
                    path,
                    line,
                )
        elif isinstance(event, yaml.DocumentStartEvent):
            docs += 1
            if docs > 1:
                raise _problem(
                    ErrorCode.YAML,
                    "a block holds one YAML document; remove the '---' separator",
                    path,
                    line,
                )
        if events > limits.max_values * 2:
            raise _problem(
                ErrorCode.INPUT_TOO_LARGE,
                f"block has more than {limits.max_values} YAML values",
                path,
                line,
            )


class _Converter:
    def __init__(self, limits: ParseLimits, path: str, offset: int) -> None:
        self.limits = limits
        self.path = path
        self.offset = offset
        self.count = 0
        self.lines: LineMap = {}
        self.constructor = yaml.constructor.SafeConstructor()

    def line(self, node: yaml.Node) -> int:
        return self.offset + node.start_mark.line

    def convert(self, node: yaml.Node, key: tuple[Any, ...]) -> Any:
        self.count += 1
        if self.count > self.limits.max_values:
            raise _problem(
                ErrorCode.INPUT_TOO_LARGE,
                f"block expands to more than {self.limits.max_values} YAML values "
                "(aliases count at every use)",
                self.path,
                self.line(node),
            )
        if isinstance(node, yaml.ScalarNode):
            if node.tag in _PLAIN_TAGS:
                try:
                    return self.constructor.construct_object(node)
                except (yaml.YAMLError, ValueError, OverflowError) as exc:
                    raise _problem(
                        ErrorCode.YAML, f"bad scalar {node.value!r}: {exc}", self.path, self.line(node)
                    ) from None
            if node.tag in _TEXT_TAGS:
                # dates, base64, the merge key: keep the text as written
                return node.value
            raise _problem(
                ErrorCode.YAML,
                f"YAML tag {node.tag!r} is not allowed; remove the tag",
                self.path,
                self.line(node),
            )
        if node.tag not in ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"):
            raise _problem(
                ErrorCode.YAML,
                f"YAML tag {node.tag!r} is not allowed; remove the tag",
                self.path,
                self.line(node),
            )
        if isinstance(node, yaml.SequenceNode):
            out_list = []
            for idx, item in enumerate(node.value):
                self.lines[(*key, idx)] = self.line(item)
                out_list.append(self.convert(item, (*key, idx)))
            return out_list
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise _problem(
                    ErrorCode.YAML, "mapping keys must be plain strings", self.path, self.line(knode)
                )
            name = str(knode.value)
            if name in out:
                raise _problem(
                    ErrorCode.YAML, f"duplicate key {name!r}", self.path, self.line(knode)
                )
            self.lines[(*key, name)] = self.line(knode)
            out[name] = self.convert(vnode, (*key, name))
        return out


def load_block_yaml(
    text: str, limits: ParseLimits, path: str, first_line: int
) -> tuple[Any, LineMap]:
    """Load a block's YAML; returns the value and a map from key paths to file lines.

    Raises:
        YamlProblem: bad YAML, or a cap exceeded.
    """
    offset = first_line
    try:
        _prescan(text, limits, path, offset)
        root = yaml.compose(text, Loader=_Loader)
    except YamlProblem:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            line: int | None = offset + mark.line
        elif isinstance(getattr(exc, "position", None), int):
            line = offset + text.count("\n", 0, exc.position)  # type: ignore[attr-defined]
        else:
            line = None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _problem(ErrorCode.YAML, f"invalid YAML: {problem}", path, line) from None
    except RecursionError:
        raise _problem(
            ErrorCode.NESTING_TOO_DEEP, "YAML nests too deeply", path, offset
        ) from None
    if root is None:
        return None, {}
    conv = _Converter(limits, path, offset)
    conv.lines[()] = conv.line(root)
    return conv.convert(root, ()), conv.lines
