"""parse() accepts every heading form the reference runtime and the spec use."""

from __future__ import annotations

import pytest

from agentic_llm.dsl import DSLParseError, NodeBlock, check_text, dumps, parse
from agentic_llm.errors import ErrorCode

BODY = 'type: assign\nassign:\n  "a": "1"\n'


@pytest.mark.parametrize("hashes", ["#", "##", "###", "####", "######"])
@pytest.mark.parametrize("quote", ["`", "'"])
@pytest.mark.parametrize("fence", ["```", "```yaml", "``` yaml"])
@pytest.mark.parametrize("markers", [True, False])
def test_heading_variants(hashes: str, quote: str, fence: str, markers: bool) -> None:
    body = BODY
    if markers:
        body = f"# --- BEGIN AgenticDSL ---\n{BODY}# --- END AgenticDSL ---\n"
    text = f"Some prose.\n\n{hashes} AgenticDSL {quote}/main/a{quote}\n{fence}\n{body}```\n\nMore prose.\n"
    doc = parse(text)
    assert len(doc.blocks) == 1
    block = doc.blocks[0]
    assert isinstance(block, NodeBlock) and block.path == "/main/a"
    assert block.node.assign == {"a": "1"}
    assert block.line == 3
    # whatever the input form, the output form is the canonical one
    assert dumps(doc).startswith("### AgenticDSL `/main/a`\n```yaml\n# --- BEGIN AgenticDSL ---\n")


def test_blank_lines_between_heading_and_fence_and_crlf() -> None:
    text = "### AgenticDSL `/main/a`\r\n\r\n```yaml\r\ntype: end\r\n```\r\n"
    assert parse(text).blocks[0].path == "/main/a"


def test_content_outside_markers_is_ignored() -> None:
    text = (
        "### AgenticDSL `/main/a`\n```yaml\nnot: [yaml\n# --- BEGIN AgenticDSL ---\n"
        "type: end\n# --- END AgenticDSL ---\n```\n"
    )
    assert parse(text).blocks[0].path == "/main/a"


def test_headings_inside_other_code_blocks_are_ignored() -> None:
    text = "```markdown\n### AgenticDSL `/main/a`\n```\n\n### AgenticDSL `/main/b`\n```yaml\ntype: end\n```\n"
    assert [b.path for b in parse(text).blocks] == ["/main/b"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("### AgenticDSL `/main/a`\nno fence here\n", 1),
        ("### AgenticDSL `/main/a`\n```yaml\ntype: end\n", 2),
        ("### AgenticDSL /main/a\n```yaml\ntype: end\n```\n", 1),
        ("### AgenticDSL `/main/a`\n```yaml\n# --- BEGIN AgenticDSL ---\ntype: end\n```\n", 3),
        ("### AgenticDSL `/main/a`\n```yaml\ntype: end\n# --- END AgenticDSL ---\n```\n", 4),
    ],
)
def test_malformed_blocks(text: str, line: int) -> None:
    with pytest.raises(DSLParseError) as info:
        parse(text)
    diag = info.value.diagnostics[0]
    assert diag.code is ErrorCode.SYNTAX and diag.line == line
    assert check_text(text)[0].code is ErrorCode.SYNTAX


def test_several_problems_reported_together() -> None:
    text = (
        "### AgenticDSL `/main/a`\n```yaml\nkey: [\n```\n\n"
        "### AgenticDSL `/main/b`\n```yaml\ntype: assign\nassign: 5\n```\n"
    )
    with pytest.raises(DSLParseError) as info:
        parse(text)
    assert [(d.code, d.line) for d in info.value.diagnostics] == [
        (ErrorCode.YAML, 4),
        (ErrorCode.INVALID_FIELD, 9),
    ]
