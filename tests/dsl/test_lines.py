"""Source positions: parsed nodes and fields know their line, in any document."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentic_llm.dsl import (
    Diagnostic,
    Document,
    NodeBlock,
    Subgraph,
    check_text,
    dumps,
    parse,
)
from agentic_llm.dsl.check import is_valid
from tests.dsl.strategies import documents

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(documents())
def test_lines_point_at_the_source(doc: Document) -> None:
    text = dumps(doc)
    lines = text.split("\n")
    for block in parse(text).blocks:
        assert block.line is not None
        assert lines[block.line - 1] == f"### AgenticDSL `{block.path}`"
        if isinstance(block, Subgraph):
            for node in block.nodes:
                assert node.line is not None
                assert lines[node.line - 1].startswith("  - ")
                for name, line in (node.field_lines or {}).items():
                    assert lines[line - 1].lstrip(" -").startswith(f"{name}:"), (name, line)
        elif isinstance(block, NodeBlock):
            for name, line in (block.node.field_lines or {}).items():
                assert lines[line - 1].startswith(f"{name}:")


EXAMPLE = (
    "### AgenticDSL `/dynamic/p`\n```yaml\n# --- BEGIN AgenticDSL ---\ngraph_type: subgraph\n"
    'entry: "start"\nnodes:\n  - id: "start"\n    type: start\n    next: ["/dynamic/p/t"]\n'
    '  - id: "t"\n    type: tool_call\n    tool: "web_search"\n    arguments:\n'
    '      "query": "hotels in {{ city }}"\n    output_keys: ["r"]\n'
    "# --- END AgenticDSL ---\n```\n"
)


@pytest.mark.timeout(120)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(EXAMPLE)), st.integers(0, 8), st.text(max_size=3)), max_size=4
    )
)
def test_mutated_documents_never_raise(edits: list[tuple[int, int, str]]) -> None:
    text = EXAMPLE
    for pos, cut, insert in edits:
        text = text[:pos] + insert + text[pos + cut :]
    diags = check_text(text)
    assert all(isinstance(d, Diagnostic) for d in diags)
    assert is_valid(text) == (not any(d.is_error for d in diags))


def test_check_text_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        check_text(12345)  # type: ignore[arg-type]
