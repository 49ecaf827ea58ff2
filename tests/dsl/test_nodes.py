"""Every node type: parsed fields, canonical output, and building nodes in code."""

from __future__ import annotations

import pytest
import yaml

from agentic_llm.dsl import (
    NODE_CLASSES,
    NODE_TYPES,
    Assert,
    Assign,
    CodeletCall,
    Document,
    DslCall,
    DSLParseError,
    End,
    ExecutionBudget,
    Fork,
    GenerateSubgraph,
    Join,
    LlmCall,
    Meta,
    NodeBlock,
    Permissions,
    Resources,
    Start,
    Subgraph,
    ToolCall,
    UnknownNode,
    dumps,
    parse,
    parse_signature,
)
from agentic_llm.errors import ErrorCode
from tests.dsl.helpers import block

CASES = [
    ("start", 'type: start\nnext: "/main/b"', Start(next=("/main/b",))),
    (
        "end",
        'type: end\ntermination_mode: soft\noutput_keys: "answer"',
        End(termination_mode="soft", output_keys=("answer",)),
    ),
    (
        "assign",
        'type: assign\nassign:\n  welcome: "Hello, {{ user.name }}!"\n  n: "15"',
        Assign(assign={"welcome": "Hello, {{ user.name }}!", "n": "15"}),
    ),
    (
        "tool_call",
        'type: tool_call\ntool: web_search\narguments:\n  query: "{{ q }}"\noutput_keys: [results]',
        ToolCall(tool="web_search", arguments={"query": "{{ q }}"}, output_keys=("results",)),
    ),
    (
        "assert",
        'type: assert\ncondition: "{{ len($.roots) == 1 }}"\non_failure: "/main/repair"',
        Assert(condition="{{ len($.roots) == 1 }}", on_failure="/main/repair"),
    ),
    (
        "fork",
        "type: fork\nfork:\n  branches: [/main/a, /main/b]",
        Fork(branches=("/main/a", "/main/b")),
    ),
    (
        "join",
        "type: join\njoin:\n  wait_for:\n    any_of: [/main/a]\n  merge_strategy: deep_merge",
        Join(wait_for=("/main/a",), wait_mode="any_of", merge_strategy="deep_merge"),
    ),
    (
        "generate_subgraph",
        'type: generate_subgraph\nprompt_template: "fix {{ $.expr }}"\noutput_keys: ["p"]\n'
        'signature_validation: warn\non_signature_violation: "/main/fallback"',
        GenerateSubgraph(
            prompt_template="fix {{ $.expr }}",
            output_keys=("p",),
            signature_validation="warn",
            on_signature_violation="/main/fallback",
        ),
    ),
    (
        "dsl_call",
        'type: dsl_call\nprompt_template: "x"\nllm_tool_name: "llama-7b"\n'
        "llm_params:\n  temperature: 0.7\n  max_tokens: 512\noutput_keys: [analysis]",
        DslCall(
            prompt_template="x",
            llm_tool_name="llama-7b",
            llm_params={"temperature": 0.7, "max_tokens": 512},
            output_keys=("analysis",),
        ),
    ),
    (
        "llm_call",
        'type: llm_call\nprompt_template: "Summarize: {{ input }}"\noutput_keys: "summary"',
        LlmCall(prompt_template="Summarize: {{ input }}", output_keys=("summary",)),
    ),
    (
        "codelet_call",
        'type: codelet_call\nruntime: python3\ncode: "print(1)"\nsecurity:\n  network: false',
        CodeletCall(runtime="python3", code="print(1)", security={"network": False}),
    ),
]


def test_cases_cover_every_node_type() -> None:
    assert sorted(c[0] for c in CASES) == sorted(NODE_TYPES)
    assert set(NODE_CLASSES) == set(NODE_TYPES)


@pytest.mark.parametrize(("type_name", "body", "expected"), CASES, ids=[c[0] for c in CASES])
def test_node_type(type_name: str, body: str, expected: object) -> None:
    doc = parse(block("/main/n", body))
    node = doc.blocks[0].node  # type: ignore[union-attr]
    assert node == expected
    assert node.type == type_name
    text = dumps(doc)
    assert parse(text) == doc
    loaded = yaml.safe_load(text.split("---\n", 1)[1].rsplit("# ---", 1)[0])
    assert loaded["type"] == type_name


@pytest.mark.parametrize(("type_name", "body", "expected"), CASES, ids=[c[0] for c in CASES])
def test_node_type_in_subgraph(type_name: str, body: str, expected: object) -> None:
    indented = "\n".join("    " + line for line in body.splitlines())
    text = block("/main", "graph_type: subgraph\nnodes:\n  - id: n\n" + indented)
    sub = parse(text).blocks[0]
    assert isinstance(sub, Subgraph)
    assert sub.nodes[0].id == "n" and sub.nodes[0].type == type_name
    assert sub.nodes[0].line == 6 and sub.nodes[0].line_of("type") == 7


def test_common_fields_and_extra_keys() -> None:
    body = (
        'type: end\nsignature: "(a: number) -> b"\npermissions: ["tool:x", {network: outbound}]\n'
        'metadata:\n  owner: "me"\non_error: "/main/e"\non_success: archive_to("/lib/x@v1")\n'
        "expected_output: {b: 1}\ncontext_merge_policy: deep_merge\ncurriculum_level: beginner\n"
        "x_custom: [1, 2]\n"
    )
    node = parse(block("/main/n", body)).blocks[0].node  # type: ignore[union-attr]
    assert node.signature == parse_signature("(a: number) -> b")
    assert node.permissions == Permissions(("tool:x", "network:outbound"))
    assert node.permissions.tools == frozenset({"x"})
    assert node.metadata == {"owner": "me"}
    assert node.on_error == "/main/e" and node.on_success == 'archive_to("/lib/x@v1")'
    assert node.expected_output == {"b": 1}
    assert node.context_merge_policy == "deep_merge"
    assert node.curriculum_level == "beginner"
    assert node.extra == {"x_custom": [1, 2]}
    assert node.targets() == [("on_error", "/main/e")]


def test_unknown_type_is_kept() -> None:
    node = parse(block("/main/n", "type: teleport\nwhere: mars")).blocks[0].node  # type: ignore[union-attr]
    assert isinstance(node, UnknownNode)
    assert node.type == "teleport" and node.extra == {"where": "mars"}


@pytest.mark.parametrize(
    "body",
    [
        "type: assign\nassign: [a]",
        "type: assign\nassign:\n  a: 5",
        "type: tool_call\ntool: t\narguments:\n  n: 5\noutput_keys: [r]",
        "type: tool_call\ntool: [t]\noutput_keys: [r]",
        "type: start\nnext: {a: 1}",
        "type: start\nnext: [1, 2]",
        "type: fork\nfork: [a]",
        "type: fork\nfork:\n  branches: [a]\n  extra: 1",
        "type: join\njoin:\n  wait_for: {some_of: [a]}",
        "type: join\njoin:\n  waits: [a]",
        "type: end\nmetadata: 5",
        "type: end\npermissions: tool",
        "type: end\npermissions: [[a]]",
    ],
)
def test_wrong_field_shapes(body: str) -> None:
    with pytest.raises(DSLParseError) as info:
        parse(block("/main/n", body))
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert info.value.diagnostics[0].line is not None


def test_block_shapes() -> None:
    for body, code in [
        ("- a\n- b", ErrorCode.INVALID_FIELD),
        ("graph_type: dag\nnodes: []", ErrorCode.INVALID_FIELD),
        ("graph_type: subgraph\nnodes: {a: 1}", ErrorCode.INVALID_FIELD),
        ("graph_type: subgraph\nnodes: [5]", ErrorCode.INVALID_FIELD),
        ("name: thing", ErrorCode.MISSING_FIELD),
        ('graph_type: subgraph\nsignature: "(a"\nnodes: []', ErrorCode.SIGNATURE_SYNTAX),
    ]:
        with pytest.raises(DSLParseError) as info:
            parse(block("/main/n", body))
        assert info.value.code is code, body


def test_meta_and_resources() -> None:
    text = (
        block(
            "/__meta__",
            "version: 3.1\nmode: dev\nentry_point: /main/start\nexecution_budget:\n"
            "  max_nodes: 20\n  max_subgraph_depth: 2\nowner: me",
        )
        + "\n"
        + block(
            "/__meta__/resources",
            "type: resource_declare\nresources:\n  - type: tool\n    name: web_search\n"
            "  - type: generate_subgraph\n    max_depth: 2\n  - type: network\n    outbound:\n"
            '      domains: ["api.example.com"]',
        )
    )
    doc = parse(text)
    meta, res = doc.blocks
    assert meta == Meta(
        version="3.1",
        mode="dev",
        entry_point="/main/start",
        execution_budget=ExecutionBudget(max_nodes=20, max_subgraph_depth=2),
        extra={"owner": "me"},
    )
    assert isinstance(res, Resources)
    assert res.tools == frozenset({"web_search"}) and res.generate_subgraph_depth == 2
    assert doc.meta is meta and doc.resources is res
    assert parse(dumps(doc)) == doc
    for bad in (
        "execution_budget:\n  max_nodes: many",
        "execution_budget:\n  max_cats: 1",
        "execution_budget: 5",
    ):
        with pytest.raises(DSLParseError):
            parse(block("/__meta__", bad))
    for bad in (
        "type: other",
        "type: resource_declare\nresources: 5",
        "type: resource_declare\nresources: [5]",
    ):
        with pytest.raises(DSLParseError):
            parse(block("/__meta__/resources", bad))


def test_build_ast_in_code_then_dump() -> None:
    doc = Document(
        (
            Subgraph(
                path="/dynamic/plan_1",
                entry="start",
                nodes=(
                    Start(id="start", next=("/dynamic/plan_1/search",)),
                    ToolCall(
                        id="search",
                        tool="web_search",
                        arguments={"query": "hotels in {{ city }}"},
                        output_keys=("results",),
                    ),
                ),
            ),
            NodeBlock(path="/dynamic/plan_1/done", node=End()),
        )
    )
    text = dumps(doc)
    assert text == (
        "### AgenticDSL `/dynamic/plan_1`\n```yaml\n# --- BEGIN AgenticDSL ---\n"
        'graph_type: subgraph\nentry: "start"\nnodes:\n  - id: "start"\n    type: start\n'
        '    next: ["/dynamic/plan_1/search"]\n  - id: "search"\n    type: tool_call\n'
        '    tool: "web_search"\n    arguments:\n      "query": "hotels in {{ city }}"\n'
        '    output_keys: ["results"]\n# --- END AgenticDSL ---\n```\n\n'
        "### AgenticDSL `/dynamic/plan_1/done`\n```yaml\n# --- BEGIN AgenticDSL ---\n"
        "type: end\n# --- END AgenticDSL ---\n```\n"
    )
    assert parse(text) == doc
    assert doc.node_count == 3
    assert [p for p, _, _ in doc.iter_nodes()] == [
        "/dynamic/plan_1/start",
        "/dynamic/plan_1/search",
        "/dynamic/plan_1/done",
    ]
