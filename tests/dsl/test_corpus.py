"""The document corpus: every valid document passes, every invalid one reports
exactly its expected error codes.

Each file starts with ``<!-- expect: valid -->`` or ``<!-- expect: ERR_A ERR_B -->``
and optionally ``<!-- policy: {...} -->`` (keyword arguments of ValidationPolicy, as
JSON). HTML comments are prose to the parser.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agentic_llm.dsl import Severity, ValidationPolicy, check_text, dumps, parse
from agentic_llm.dsl.diagnostics import DSLParseError
from agentic_llm.errors import ErrorCode

CORPUS = Path(__file__).parent / "corpus"
VALID = sorted((CORPUS / "valid").glob("*.md"))
INVALID = sorted((CORPUS / "invalid").glob("*.md"))
_EXPECT = re.compile(r"<!-- expect: ([^>]*?) -->")
_POLICY = re.compile(r"<!-- policy: (.*?) -->")


def _header(path: Path) -> tuple[str, list[str], ValidationPolicy | None]:
    text = path.read_text(encoding="utf-8")
    expect = _EXPECT.search(text)
    assert expect is not None, f"{path.name} has no expect header"
    policy_match = _POLICY.search(text)
    policy = ValidationPolicy(**json.loads(policy_match.group(1))) if policy_match else None
    return text, expect.group(1).split(), policy


def test_corpus_size() -> None:
    assert len(VALID) >= 40 and len(INVALID) >= 40


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid(path: Path) -> None:
    text, expect, policy = _header(path)
    assert expect == ["valid"]
    errors = [d for d in check_text(text, policy) if d.severity is Severity.ERROR]
    assert errors == []
    doc = parse(text)
    canonical = dumps(doc)
    assert parse(canonical) == doc
    assert dumps(parse(canonical)) == canonical
    assert [d for d in check_text(canonical, policy) if d.severity is Severity.ERROR] == []


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid(path: Path) -> None:
    text, expect, policy = _header(path)
    diags = check_text(text, policy)
    errors = [d for d in diags if d.severity is Severity.ERROR]
    assert {d.code for d in errors} == {ErrorCode(c) for c in expect}
    for d in errors:
        assert d.message
        # every finding points at a source line, except a document with no blocks
        assert d.line is not None or d.code is ErrorCode.SYNTAX


def test_invalid_corpus_covers_every_document_code() -> None:
    seen: set[str] = set()
    for path in INVALID:
        seen.update(_header(path)[1])
    document_codes = {
        "ERR_SYNTAX",
        "ERR_YAML",
        "ERR_NESTING_TOO_DEEP",
        "ERR_INPUT_TOO_LARGE",
        "ERR_INVALID_PATH",
        "ERR_DUPLICATE_PATH",
        "ERR_SIGNATURE_REQUIRED",
        "ERR_SIGNATURE_SYNTAX",
        "ERR_NAMESPACE_VIOLATION",
        "ERR_MISSING_ENTRY_POINT",
        "ERR_UNKNOWN_NODE_TYPE",
        "ERR_MISSING_FIELD",
        "ERR_INVALID_FIELD",
        "ERR_DUPLICATE_ID",
        "ERR_UNRESOLVED_REFERENCE",
        "ERR_CYCLE",
        "ERR_CTX_MERGE_CONFLICT",
        "ERR_BUDGET_EXCEEDED",
        "ERR_TOOL_NOT_GRANTED",
        "ERR_TOOL_ARGUMENTS",
        "ERR_RESOURCE_UNAVAILABLE",
        "ERR_UNSUPPORTED_CAPABILITY",
        "ERR_TEMPLATE_SYNTAX",
        "ERR_UNKNOWN_VARIABLE",
        "ERR_NODE_TYPE_NOT_ALLOWED",
    }
    assert document_codes <= seen


def test_parse_errors_of_invalid_corpus_are_parse_errors() -> None:
    # files whose problem is in the text itself fail parse(); the rest parse fine
    textual = {
        "ERR_SYNTAX",
        "ERR_YAML",
        "ERR_NESTING_TOO_DEEP",
        "ERR_INPUT_TOO_LARGE",
        "ERR_SIGNATURE_SYNTAX",
    }
    for path in INVALID:
        text, expect, _ = _header(path)
        if set(expect) & textual and path.stem != "01_no_blocks":
            with pytest.raises(DSLParseError):
                parse(text)
