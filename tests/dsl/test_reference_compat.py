"""Canonical text meets the reference runtime parser's expectations.

The runtime finds blocks with one regular expression (heading, fence, BEGIN marker,
lazily everything up to the END marker, closing fence), checks each path against
``^/[\\w/\\-]+$`` and reads ``signature``, permissions and tool arguments as
strings, fork and join fields under ``fork:`` / ``join:``. The same expression,
written for Python's ``re``, must find exactly our blocks, with our bodies.
"""

from __future__ import annotations

import re

import yaml
from hypothesis import HealthCheck, given, settings

from agentic_llm.dsl import Document, dumps
from tests.dsl.strategies import documents, generation_documents

RUNTIME_BLOCK = re.compile(
    r"#\s+AgenticDSL\s+`([^`]+)`\s*\n"
    r"```(?:yaml)?\s*\n"
    r"# --- BEGIN AgenticDSL ---\s*\n"
    r"([\s\S]*?)"
    r"\n# --- END AgenticDSL ---\s*\n"
    r"```"
)
RUNTIME_PATH = re.compile(r"^/[\w/\-]+$", re.ASCII)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _runtime_blocks(text: str) -> list[tuple[str, object]]:
    return [(m.group(1), yaml.safe_load(m.group(2))) for m in RUNTIME_BLOCK.finditer(text)]


@SETTINGS
@given(documents())
def test_runtime_regex_finds_every_block(doc: Document) -> None:
    found = _runtime_blocks(dumps(doc))
    assert [path for path, _ in found] == [b.path for b in doc.blocks]


@SETTINGS
@given(generation_documents("/dynamic/plan_3", external_paths=("/lib/math/add@v1",)))
def test_generated_text_reads_as_the_runtime_expects(doc: Document) -> None:
    ((path, body),) = _runtime_blocks(dumps(doc))
    assert RUNTIME_PATH.match(path)
    assert isinstance(body, dict)
    assert body["graph_type"] == "subgraph" and body["entry"] == "start"
    for node in body["nodes"]:
        assert isinstance(node["id"], str) and RUNTIME_PATH.match(f"{path}/{node['id']}")
        for target in node.get("next", []):
            assert isinstance(target, str) and target.startswith("/")
        if node["type"] == "tool_call":
            assert all(isinstance(v, str) for v in node["arguments"].values())
            assert isinstance(node["output_keys"], list)
        if node["type"] == "fork":
            assert set(node) >= {"fork"} and "branches" not in node
            assert isinstance(node["fork"]["branches"], list)
        if node["type"] == "join":
            assert isinstance(node["join"]["wait_for"], list)
        if node["type"] == "assign":
            assert all(isinstance(v, str) for v in node["assign"].values())


def test_signature_and_permissions_are_strings() -> None:
    from agentic_llm.dsl import Permissions, Signature, Start, Subgraph, parse_signature

    doc = Document(
        (
            Subgraph(
                path="/lib/math/add",
                signature=parse_signature("(a: number, b: number) -> sum: number"),
                permissions=Permissions(("tool:calculate",)),
                nodes=(Start(id="s", signature=Signature(), permissions=Permissions()),),
            ),
        )
    )
    ((_, body),) = _runtime_blocks(dumps(doc))
    assert isinstance(body, dict)
    assert body["signature"] == "(a: number, b: number) -> sum: number"
    assert body["permissions"] == ["tool:calculate"]
    assert body["nodes"][0]["signature"] == "()" and body["nodes"][0]["permissions"] == []
