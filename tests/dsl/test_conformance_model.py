"""The model of the reference runtime: its block regex, its quote-blind YAML reading,
its node construction and its graph build, on small documents."""

from __future__ import annotations

from agentic_llm.dsl.conformance import Verdict, check_runtime, simulate
from agentic_llm.dsl.conformance.blocks import REGEX_STACK_LIMIT_BYTES
from agentic_llm.dsl.diagnostics import Severity
from agentic_llm.errors import ErrorCode


def block(path: str, body: str, *, heading: str = "###", quote: str = "`") -> str:
    return (
        f"{heading} AgenticDSL {quote}{path}{quote}\n```yaml\n# --- BEGIN AgenticDSL ---\n"
        f"{body}\n# --- END AgenticDSL ---\n```\n\n"
    )


MAIN = (
    "graph_type: subgraph\nnodes:\n  - id: s\n    type: start\n    next: /main/e\n"
    "  - id: e\n    type: end\n"
)


def errors(text: str) -> set[ErrorCode]:
    return {d.code for d in check_runtime(text) if d.severity is Severity.ERROR}


def test_a_plain_program_is_accepted_and_read_whole() -> None:
    outcome = simulate(block("/main", MAIN))
    assert outcome.verdict is Verdict.ACCEPT
    assert [(g.path, g.nodes) for g in outcome.graphs] == [("/main", ("/main/s", "/main/e"))]
    assert check_runtime(block("/main", MAIN)) == []


def test_end_soft_shorthand_is_not_registered_but_the_system_path_is() -> None:
    short = MAIN.replace("next: /main/e", "next: /end_soft")
    outcome = simulate(block("/main", short))
    assert outcome.verdict is Verdict.REJECT and outcome.stage == "build_dag"
    assert outcome.message == "Next node not found: /end_soft"
    system = MAIN.replace("next: /main/e", "next: /__system__/end_soft")
    assert simulate(block("/main", system)).verdict is Verdict.ACCEPT


def test_quoted_numbers_and_empty_strings_are_not_strings_to_it() -> None:
    tool = (
        "graph_type: subgraph\nnodes:\n  - id: t\n    type: tool_call\n    tool: web_search\n"
        '    arguments:\n      nights: "2"\n    output_keys: r\n'
    )
    outcome = simulate(block("/main", tool))
    assert outcome.verdict is Verdict.REJECT
    assert outcome.message == "Error parsing block '/main': Argument 'nights' is not a string"
    assert errors(block("/main", tool)) == {ErrorCode.RUNTIME_REJECTED}
    assert simulate(block("/main", tool.replace('"2"', '"two"'))).verdict is Verdict.ACCEPT
    llm = '    type: llm_call\n    prompt_template: ""\n    output_keys: r\n'
    outcome = simulate(block("/main", "graph_type: subgraph\nnodes:\n  - id: l\n" + llm))
    assert outcome.message.endswith("type must be string, but is null")


def test_single_quoted_heading_and_missing_markers_are_dropped() -> None:
    text = block("/main", MAIN, quote="'")
    assert simulate(text).graphs == []
    assert errors(text) == {ErrorCode.RUNTIME_DROPPED}
    no_markers = "### AgenticDSL `/main`\n```yaml\n" + MAIN + "```\n"
    assert errors(no_markers) == {ErrorCode.RUNTIME_DROPPED}


def test_an_empty_body_swallows_the_next_block() -> None:
    text = block("/__meta__", "") + block("/main", MAIN)
    outcome = simulate(text)
    assert outcome.verdict is Verdict.ACCEPT and outcome.graphs == []
    assert ErrorCode.RUNTIME_DROPPED in errors(text)


def test_unknown_node_types_are_dropped_and_edges_to_them_fail() -> None:
    text = block("/dynamic/c", 'type: codelet_call\nruntime: python3\ncode: "x"')
    assert simulate(text).graphs == []
    assert errors(text) == {ErrorCode.RUNTIME_DROPPED}


def test_crlf_keeps_a_carriage_return_on_the_last_line() -> None:
    text = block("/dynamic/x", "type: end").replace("\n", "\r\n")
    assert simulate(text).graphs == []  # the type reads 'end\r'
    text = block("/dynamic/x", "type: end\nmetadata: {}").replace("\n", "\r\n")
    assert simulate(text).reason == "yaml"  # '{}\r' does not end the flow mapping
    text = block("/dynamic/x", "type: end\nmetadata:\n  a: b").replace("\n", "\r\n")
    assert [g.path for g in simulate(text).graphs] == ["/dynamic/x"]
    text = block("/dynamic/x", "type: end\nnext: /dynamic/y").replace("\n", "\r\n")
    assert simulate(text).message == "Next node not found: /dynamic/y\r"


def test_large_blocks_crash_its_regex() -> None:
    body = 'type: assign\nassign:\n  x: "' + "a" * REGEX_STACK_LIMIT_BYTES + '"'
    outcome = simulate(block("/dynamic/big", body))
    assert outcome.verdict is Verdict.CRASH and outcome.reason == "regex_stack"
    assert errors(block("/dynamic/big", body)) == {ErrorCode.RUNTIME_CRASH}
    assert simulate(block("/dynamic/big", body[:20_000] + '"')).verdict is Verdict.ACCEPT


def test_alias_bombs_never_finish() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    text = block("/dynamic/bomb", "type: end\nmetadata:\n  " + "\n  ".join(lines))
    assert simulate(text).reason == "alias_expansion"


def test_invalid_path_and_wait_for() -> None:
    outcome = simulate(block("/lib/x@v1", "type: end"))
    assert outcome.message == "Invalid node path format: /lib/x@v1"
    wait = "type: end\nmetadata:\n  wait_for:\n    all_of: [/dynamic/nowhere]"
    assert simulate(block("/dynamic/w", wait)).message == (
        "wait_for dependency not found: /dynamic/nowhere"
    )


def warnings_of(text: str) -> set[ErrorCode]:
    return {d.code for d in check_runtime(text) if d.severity is Severity.WARNING}


def test_declarations_it_ignores_are_warnings_not_errors() -> None:
    perms = MAIN.replace("type: end\n", "type: end\n    permissions: [{tool: web_search}]\n")
    text = block("/main", perms)
    assert errors(text) == set() and warnings_of(text) == {ErrorCode.RUNTIME_DROPPED}
    resources = block("/__meta__/resources", "type: resource_declare\nresources: []")
    assert errors(resources + block("/main", MAIN)) == set()
    assert warnings_of(resources + block("/main", MAIN)) == {ErrorCode.RUNTIME_DROPPED}


def test_a_resource_node_loses_its_next() -> None:
    res = "type: resource\nresource_type: file\nuri: /tmp/x\nnext: /main/s"
    outcome = simulate(block("/dynamic/r", res) + block("/main", MAIN))
    assert outcome.verdict is Verdict.ACCEPT
    assert any(d.what == "next" and d.severe for d in outcome.drops)
    bad = res.replace("resource_type: file", "resource_type: s3")
    assert simulate(block("/dynamic/r", bad)).message == (
        "Error parsing block '/dynamic/r': Unknown resource_type 's3'"
    )


def test_without_main_it_warns_which_side_we_follow() -> None:
    text = block("/dynamic/x", "type: end")
    (warning,) = [d for d in check_runtime(text) if d.code is ErrorCode.RUNTIME_DIVERGENCE]
    assert warning.severity is Severity.WARNING and "we follow the spec" in warning.message
