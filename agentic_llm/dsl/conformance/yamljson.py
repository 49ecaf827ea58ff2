"""How the reference runtime turns a block's YAML into JSON.

Models ``YAML::Load`` (yaml-cpp) followed by ``yaml_to_json``
(``src/common/utils/yaml_json.cpp``):

- scalars are converted from their text alone, quoting ignored
  (:func:`~agentic_llm.dsl.conformance.scalars.reference_scalar`); plain ``null``,
  ``Null``, ``NULL``, ``~`` and empty values are null;
- map keys are taken as text; a later duplicate key overwrites an earlier one;
- anchors and aliases are expanded in place, so an alias bomb never finishes;
- yaml-cpp breaks lines at ``\\n`` and ``\\r\\n`` only: the body's last line, cut just
  before the ``\\n`` of the END marker line, keeps a lone ``\\r`` in a CRLF file,
  and that ``\\r`` becomes part of the last scalar (``type: end\\r``);
- only the first YAML document of a block is read.

PyYAML stands in for yaml-cpp's syntax checks; the two disagree on rare inputs
(see docs/conformance.md).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from agentic_llm.dsl.conformance.outcome import RuntimeRefusal
from agentic_llm.dsl.conformance.scalars import reference_scalar

__all__ = ["load_reference_json", "ExpansionTooLarge", "EXPANSION_LIMIT"]

# Nodes yaml_to_json may visit before we call the document a hang (alias bombs).
EXPANSION_LIMIT = 1_000_000
_NULL_TAG = "tag:yaml.org,2002:null"
# A lone CR that yaml-cpp keeps inside a scalar; PyYAML would break the line there.
_LONE_CR = "\ue000"
_SEPARATOR_TAB = re.compile(r"([:,\-])\t+")


class ExpansionTooLarge(Exception):
    """Expanding aliases would visit more than ``EXPANSION_LIMIT`` nodes."""


def _protect_lone_cr(text: str) -> str:
    out = []
    for i, ch in enumerate(text):
        if ch == "\r" and not text.startswith("\n", i + 1):
            out.append(_LONE_CR)
        else:
            out.append(ch)
    return "".join(out)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias is cut here; yaml-cpp would loop
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, memo) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[key] = min(size, EXPANSION_LIMIT + 1)
    return memo[key]


def _key_text(node: yaml.Node, block: str) -> str:
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _NULL_TAG and node.style is None:
            return "null"
        return str(node.value).replace(_LONE_CR, "\r")
    mark = node.start_mark
    raise RuntimeRefusal(
        "bad_conversion",
        f"Error parsing block '{block}': yaml-cpp: error at line {mark.line + 1}, "
        f"column {mark.column + 1}: bad conversion",
        block=block,
    )


def _to_json(node: yaml.Node, block: str) -> Any:
    if isinstance(node, yaml.ScalarNode):
        if node.style is None and node.tag == _NULL_TAG:
            return None
        return reference_scalar(str(node.value).replace(_LONE_CR, "\r"))
    if isinstance(node, yaml.SequenceNode):
        return [_to_json(item, block) for item in node.value]
    if isinstance(node, yaml.MappingNode):
        obj: dict[str, Any] = {}
        for key, value in node.value:
            obj[_key_text(key, block)] = _to_json(value, block)
        return obj
    return None


def _compose_first(text: str) -> yaml.Node | None:
    """The first document's node graph. yaml-cpp takes a tab as the space after a
    ``:``, ``-`` or ``,`` separator where PyYAML does not: such tabs are retried as
    spaces."""
    try:
        return next(iter(yaml.compose_all(text, Loader=yaml.SafeLoader)), None)
    except yaml.YAMLError:
        relaxed = _SEPARATOR_TAB.sub(r"\1 ", text)
        if relaxed == text:
            raise
        return next(iter(yaml.compose_all(relaxed, Loader=yaml.SafeLoader)), None)


def load_reference_json(text: str, block: str) -> Any:
    """The JSON value the reference makes of one block's YAML.

    Raises RuntimeRefusal (reason ``yaml``) where the YAML does not parse, and
    ExpansionTooLarge for alias bombs.
    """
    try:
        root = _compose_first(_protect_lone_cr(text))
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RuntimeRefusal(
            "yaml", f"YAML parse error in block '{block}': {problem}", block=block
        ) from None
    if root is None:
        return None
    if _expanded_size(root, {}) > EXPANSION_LIMIT:
        raise ExpansionTooLarge(block)
    return _to_json(root, block)
