"""The nesting check that runs before the YAML parser: it decides ERR_NESTING_TOO_DEEP
whatever the installed YAML library caps on its own, and never refuses a block that
nests within the limit."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentic_llm.dsl import ParseLimits, check_text, yamlload
from agentic_llm.dsl.yamldepth import first_line_too_deep
from agentic_llm.errors import ErrorCode
from tests.dsl.helpers import block

EXAMPLES = Path(__file__).parents[2] / "examples"


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_TEXT = st.text(alphabet=string.ascii_letters + " :#-[]{}'\"|>\n,&*!?", max_size=12)
_VALUES = st.recursive(
    st.one_of(st.none(), st.integers(), _TEXT),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)
    ),
    max_leaves=25,
)


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_VALUES, st.sampled_from([None, True, False]), st.sampled_from([None, 2, 4]))
def test_never_counts_deeper_than_the_yaml_nests(
    value: Any, flow: bool | None, indent: int | None
) -> None:
    text = yaml.safe_dump(value, default_flow_style=flow, indent=indent, width=20)
    assert first_line_too_deep(text, _depth(value)) is None


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("a: [[1], {b: [2]}]", 4),
        ("a:\n  b:\n    - c: 1\n    - [x, {y: z}]", 5),
        ("- - - x", 3),
        ('k: "[[[["\nl: \'{{\' # [[[[\nm: |\n  [[[[\n  {{{{\nn: text [[[[\n  [[[[', 1),
        ("prompt: Find hotels in {{ city }} near [the] station", 1),
    ],
)
def test_counts_what_opens_a_collection(text: str, depth: int) -> None:
    assert _depth(yaml.safe_load(text)) == depth
    assert first_line_too_deep(text, depth) is None
    if depth > 1:
        assert first_line_too_deep(text, depth - 1) is not None


def test_shipped_examples_pass() -> None:
    for path in sorted(EXAMPLES.glob("*.md")):
        assert check_text(path.read_text()) == [], path.name


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "body",
    [
        "a: " + "[" * 1_200 + "]" * 1_200,
        "a: " + "{b: " * 1_200 + "1" + "}" * 1_200,
        "".join(" " * i + f"k{i}:\n" for i in range(1_100)) + " " * 1_100 + "v",
        "a:\n  " + "- " * 1_100 + "x",
    ],
)
def test_refused_before_the_parser_runs(body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parser(*args: object, **kwargs: object) -> None:
        raise AssertionError("the YAML parser ran on a block already known to nest too deep")

    monkeypatch.setattr(yamlload.yaml, "parse", no_parser)
    diags = check_text(block("/main/x", body), limits=ParseLimits(max_depth=32))
    assert [d.code for d in diags] == [ErrorCode.NESTING_TOO_DEEP]
    assert diags[0].line is not None
