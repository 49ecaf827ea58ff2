"""Agreement with the reference runtime on every document in examples/ and tests/.

``reference_verdicts.json`` holds what the reference AgenticDSL runtime
(chisuhua/AgenticDSL at cc8c7df, built from its sources with yaml-cpp 0.7.0 and
nlohmann-json 3.11.2) did with each document: ``MarkdownParser::parse_from_string``,
then the system and parsed nodes registered and ``TopoScheduler::build_dag()`` called
as ``DSLEngine::run`` does. ``accept`` records the graphs and node paths it built,
``reject`` the stage and its exception text, ``crash`` a process that died or hung.
The model must reproduce each verdict exactly (for YAML syntax errors, the message
up to the block path: yaml-cpp and PyYAML word their errors differently).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agentic_llm.dsl import check_text
from agentic_llm.dsl.conformance import check_runtime, simulate
from agentic_llm.dsl.diagnostics import Severity
from agentic_llm.errors import ErrorCode

ROOT = Path(__file__).parents[2]
VERDICTS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "reference_verdicts.json").read_text(encoding="utf-8")
)
DOCUMENTS = sorted(
    [p.relative_to(ROOT).as_posix() for p in (ROOT / "examples").glob("*.md")]
    + [p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("*.md")]
)
_RUNTIME_HEADER = re.compile(r"<!-- agenticrt: (ERR_\w+) (\w+) -->")
_YAML = re.compile(r"(YAML parse error in block '[^']*'): ")


# Further documents with the reference's verdicts: quoted scalars in a tool argument,
# YAML syntax corner cases (tabs, tags, anchors, complex keys, directives),
# random field types per node type, and mutated corpus documents (headings, fences,
# markers, CRLF, dropped lines).
CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "reference_cases.json").read_text(encoding="utf-8")
)


def test_every_document_has_a_recorded_verdict() -> None:
    assert DOCUMENTS and sorted(VERDICTS) == DOCUMENTS


def _observed(rel: str) -> dict[str, Any]:
    return _observed_text((ROOT / rel).read_bytes().decode("utf-8"))


def _observed_text(text: str) -> dict[str, Any]:
    outcome = simulate(text)
    got: dict[str, Any] = {"verdict": outcome.verdict.value}
    if outcome.verdict.value == "accept":
        got["graphs"] = [[g.path, list(g.nodes)] for g in outcome.graphs]
    elif outcome.verdict.value == "reject":
        got["stage"] = str(outcome.stage)
        got["message"] = outcome.message
    return got


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "detail"}
    if "message" in out and (m := _YAML.match(out["message"])):
        out["message"] = m.group(1)
    return out


@pytest.mark.parametrize("rel", DOCUMENTS)
def test_model_reproduces_the_reference_verdict(rel: str) -> None:
    assert _comparable(_observed(rel)) == _comparable(VERDICTS[rel])


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_model_reproduces_the_reference_on_recorded_cases(case: dict[str, Any]) -> None:
    expected = {k: v for k, v in case.items() if k != "text"}
    assert _comparable(_observed_text(case["text"])) == _comparable(expected)


def test_recorded_cases_cover_each_outcome() -> None:
    assert len(CASES) >= 150
    assert {c["verdict"] for c in CASES} == {"accept", "reject"}


@pytest.mark.parametrize("rel", DOCUMENTS)
def test_validate_agenticrt_agrees_with_the_reference(rel: str) -> None:
    expected = VERDICTS[rel]
    errors = [d for d in check_runtime((ROOT / rel).read_bytes()) if d.severity is Severity.ERROR]
    codes = {d.code for d in errors}
    if expected["verdict"] == "reject":
        assert ErrorCode.RUNTIME_REJECTED in codes
    elif expected["verdict"] == "crash":
        assert codes == {ErrorCode.RUNTIME_CRASH}
    else:
        # accepted: the only errors are parts the reference silently left out, and
        # each one names a block or node that is indeed missing from what it built
        built = {g[0] for g in expected["graphs"]} | {n for g in expected["graphs"] for n in g[1]}
        assert codes <= {ErrorCode.RUNTIME_DROPPED}
        for d in errors:
            assert d.block is not None and d.block not in built


def _runtime_class(text: str) -> set[tuple[str, str]]:
    found = set()
    outcome = simulate(text)
    for d in check_runtime(text):
        if d.severity is not Severity.ERROR:
            continue
        if d.code is ErrorCode.RUNTIME_DROPPED:
            reason = "unread" if "does not read this block" in d.message else "not_built"
        else:
            reason = outcome.reason or ""
        found.add((d.code.value, reason))
    return found


@pytest.mark.parametrize("rel", [d for d in DOCUMENTS if "/corpus/valid/" in d or "examples/" in d])
def test_valid_documents_run_in_the_reference_or_carry_the_divergence(rel: str) -> None:
    text = (ROOT / rel).read_bytes().decode("utf-8")  # keeps CRLF line ends
    header = _RUNTIME_HEADER.findall(text)
    assert _runtime_class(text) == set(header)
    if rel.startswith("examples/"):
        assert header == [] and VERDICTS[rel]["verdict"] == "accept"
    docs = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    for _, reason in header:
        assert f"`{reason}`" in docs


def test_examples_are_valid_for_both_spec_and_reference() -> None:
    for rel in DOCUMENTS:
        if rel.startswith("examples/"):
            text = (ROOT / rel).read_bytes().decode("utf-8")
            assert [d for d in check_text(text) if d.severity is Severity.ERROR] == []
            assert [d for d in check_runtime(text) if d.severity is Severity.ERROR] == []
