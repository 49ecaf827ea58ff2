"""The public API of agentic_llm.dsl as other parts import it."""

from __future__ import annotations

from pathlib import Path

import yaml

import agentic_llm.dsl as dsl
from agentic_llm.dsl import (
    Diagnostic,
    Document,
    DSLParseError,
    Severity,
    ValidationPolicy,
    check_text,
    dumps,
    parse,
    parse_signature,
    template_variables,
    validate,
)
from agentic_llm.errors import AgenticError, ErrorCode

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.md"))


def test_all_names_exported() -> None:
    for name in dsl.__all__:
        assert hasattr(dsl, name), name


def test_examples_are_valid_and_round_trip() -> None:
    assert len(EXAMPLES) >= 4
    for path in EXAMPLES:
        text = path.read_text()
        diags = check_text(text)
        assert not [d for d in diags if d.severity is Severity.ERROR], (path, diags)
        doc = parse(text)
        assert isinstance(doc, Document)
        canonical = dumps(doc)
        assert parse(canonical) == doc
        assert dumps(parse(canonical)) == canonical
        # every block body loads with PyYAML's safe_load
        for block in canonical.split("# --- BEGIN AgenticDSL ---\n")[1:]:
            body = block.split("# --- END AgenticDSL ---")[0]
            assert isinstance(yaml.safe_load(body), dict)


def test_parse_error_is_agentic_error_with_diagnostics() -> None:
    bad = "### AgenticDSL `/main`\n```yaml\nnodes: [\n```\n"
    try:
        parse(bad)
    except DSLParseError as exc:
        assert isinstance(exc, AgenticError)
        assert exc.code is ErrorCode.YAML
        assert exc.diagnostics and isinstance(exc.diagnostics[0], Diagnostic)
        assert exc.diagnostics[0].line is not None
    else:  # pragma: no cover - the parse must fail
        raise AssertionError("parse accepted broken YAML")


def test_validate_policy_and_helpers() -> None:
    doc = parse(EXAMPLES[0].read_text())
    diags = validate(doc, ValidationPolicy(max_nodes=1))
    assert any(d.code is ErrorCode.BUDGET_EXCEEDED for d in diags)
    sig = parse_signature("(a: number, b: number) -> sum: number")
    assert sig.input_names == ("a", "b") and sig.output_names == ("sum",)
    assert template_variables("{{ user.name }} and {{ $.items[0] }}") == {"user", "items"}
