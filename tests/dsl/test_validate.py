"""validate(): one test per rule, each checking the code, the block and the line."""

from __future__ import annotations

import pytest

from agentic_llm.dsl import Severity, ValidationPolicy, check_text, parse, validate
from agentic_llm.errors import ErrorCode
from tests.dsl.helpers import SIMPLE_DYNAMIC, block, doc, error_codes, errors, warning_codes

E = ErrorCode


def sub(path: str, nodes: str, extra: str = "") -> str:
    return block(path, f"graph_type: subgraph\n{extra}nodes:\n{nodes}")


META = block("/__meta__", 'version: "3.10"\nentry_point: "/main/start"')
MAIN = sub(
    "/main",
    """  - id: "start"
    type: start
    next: ["/main/end"]
  - id: "end"
    type: end
""",
)


def test_clean_document_has_no_diagnostics() -> None:
    assert check_text(SIMPLE_DYNAMIC) == []
    assert check_text(doc(META, MAIN)) == []


def test_empty_document() -> None:
    assert error_codes("just prose, no blocks\n") == {E.SYNTAX}


def test_invalid_path_and_duplicates() -> None:
    text = doc(
        block("/dynamic/a b", "type: end"),
        block("/dynamic/x", "type: end"),
        block("/dynamic/x", "type: end"),
    )
    diags = errors(text)
    assert {d.code for d in diags} == {E.INVALID_PATH, E.DUPLICATE_PATH}
    dup = next(d for d in diags if d.code is E.DUPLICATE_PATH)
    assert dup.block == "/dynamic/x" and dup.line == 15


def test_node_path_colliding_with_block_path() -> None:
    text = doc(SIMPLE_DYNAMIC, block("/dynamic/p/end", "type: end"))
    assert E.DUPLICATE_PATH in error_codes(text)


def test_namespace_rules() -> None:
    policy = ValidationPolicy(writable_prefixes=("/dynamic/",))
    text = doc(SIMPLE_DYNAMIC, block("/lib/x", 'type: end\nsignature: "()"'))
    diags = errors(text, policy)
    assert [(d.code, d.block) for d in diags] == [(E.NAMESPACE_VIOLATION, "/lib/x")]
    assert error_codes(block("/__system__/x", "type: end")) == {E.NAMESPACE_VIOLATION}
    assert error_codes(block("/__meta__/other", "type: end")) == {E.NAMESPACE_VIOLATION}
    moved = block("/dynamic/r", "type: resource_declare\nresources: []")
    assert error_codes(moved) == {E.NAMESPACE_VIOLATION}
    assert warning_codes(block("/elsewhere", "type: end")) == {E.NAMESPACE_VIOLATION}


def test_lib_needs_signature() -> None:
    text = sub("/lib/x/y", '  - id: "a"\n    type: end\n')
    diags = errors(text)
    assert [(d.code, d.block, d.line) for d in diags] == [(E.SIGNATURE_REQUIRED, "/lib/x/y", 1)]
    signed = sub("/lib/x/y", '  - id: "a"\n    type: end\n', 'signature: "() -> r"\n')
    assert E.SIGNATURE_REQUIRED not in error_codes(signed)


def test_archive_to_lib_needs_signature() -> None:
    text = sub(
        "/dynamic/d",
        '  - id: "a"\n    type: end\n    on_success: archive_to("/lib/solved/x@v1")\n',
    )
    d = errors(text)
    assert [(x.code, x.line) for x in d] == [(E.SIGNATURE_REQUIRED, 8)]


def test_entry_point_rules() -> None:
    assert error_codes(MAIN) == {E.MISSING_ENTRY_POINT}
    no_entry = block("/__meta__", 'version: "1"')
    diags = errors(doc(no_entry, MAIN))
    assert [(d.code, d.block) for d in diags] == [(E.MISSING_ENTRY_POINT, "/__meta__")]
    wrong = block("/__meta__", 'entry_point: "/main/nope"')
    diags = errors(doc(wrong, MAIN))
    assert [(d.code, d.line) for d in diags] == [(E.MISSING_ENTRY_POINT, 4)]
    # a library-only document is not a whole program
    assert not errors(SIMPLE_DYNAMIC)
    assert error_codes(SIMPLE_DYNAMIC, ValidationPolicy(require_entry_point=True)) == {
        E.MISSING_ENTRY_POINT
    }
    assert not errors(MAIN, ValidationPolicy(require_entry_point=False))


def test_meta_fields() -> None:
    bad = block(
        "/__meta__", 'entry_point: "/main/start"\nmode: fast\nexecution_budget:\n  max_snapshots: 0'
    )
    diags = errors(doc(bad, MAIN))
    assert [d.code for d in diags] == [E.INVALID_FIELD, E.INVALID_FIELD]


def test_budgets() -> None:
    meta = block("/__meta__", 'entry_point: "/main/start"\nexecution_budget:\n  max_nodes: 1')
    diags = errors(doc(meta, MAIN))
    assert [(d.code, d.block, d.line) for d in diags] == [(E.BUDGET_EXCEEDED, "/__meta__", 5)]
    llm = sub(
        "/main",
        '  - id: "start"\n    type: start\n    next: ["/main/a"]\n'
        '  - id: "a"\n    type: llm_call\n    prompt_template: "hi"\n    output_keys: ["r"]\n',
    )
    meta2 = block("/__meta__", 'entry_point: "/main/start"\nexecution_budget:\n  max_llm_calls: 0')
    assert E.BUDGET_EXCEEDED in error_codes(doc(meta2, llm))
    diags = errors(SIMPLE_DYNAMIC, ValidationPolicy(max_nodes=1))
    assert [(d.code, d.block) for d in diags] == [(E.BUDGET_EXCEEDED, "/dynamic/p/end")]


def test_subgraph_structure() -> None:
    assert error_codes(block("/dynamic/e", "graph_type: subgraph\nnodes: []")) == {E.MISSING_FIELD}
    nodes = '  - id: "a"\n    type: end\n  - id: "a"\n    type: end\n  - type: end\n'
    diags = errors(sub("/dynamic/d", nodes, 'entry: "zz"\n'))
    assert {d.code for d in diags} == {E.DUPLICATE_ID, E.MISSING_FIELD, E.UNRESOLVED_REFERENCE}
    dup = next(d for d in diags if d.code is E.DUPLICATE_ID)
    assert dup.line == 9 and dup.block == "/dynamic/d/a"
    bad_id = sub("/dynamic/d", '  - id: "a b"\n    type: end\n')
    assert error_codes(bad_id) == {E.INVALID_FIELD}


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ("type: assign", "assign"),
        ("type: assign\nassign: {}", "assign"),
        ('type: tool_call\noutput_keys: ["r"]', "tool"),
        ('type: tool_call\ntool: "t"', "output_keys"),
        ("type: assert", "condition"),
        ("type: fork", "fork.branches"),
        ("type: fork\nfork:\n  branches: []", "fork.branches"),
        ("type: join", "join.wait_for"),
        ('type: generate_subgraph\noutput_keys: ["p"]', "prompt_template"),
        ('type: generate_subgraph\nprompt_template: "x"', "output_keys"),
        ('type: dsl_call\nprompt_template: "x"\noutput_keys: ["r"]', "llm_tool_name"),
        ('type: llm_call\nprompt_template: "x"\noutput_keys: []', "output_keys"),
        ('type: codelet_call\nruntime: "python3"', "code"),
    ],
)
def test_required_fields(body: str, missing: str) -> None:
    diags = errors(block("/dynamic/n", body))
    assert [d.code for d in diags] == [E.MISSING_FIELD]
    assert f"'{missing}'" in diags[0].message
    assert diags[0].block == "/dynamic/n" and diags[0].line == 4


def test_node_without_type_in_subgraph() -> None:
    diags = errors(sub("/dynamic/d", '  - id: "a"\n    next: []\n'))
    assert [(d.code, d.line) for d in diags] == [(E.MISSING_FIELD, 6)]


def test_unknown_and_disallowed_types() -> None:
    diags = errors(block("/dynamic/n", "type: teleport"))
    assert [(d.code, d.line) for d in diags] == [(E.UNKNOWN_NODE_TYPE, 4)]
    policy = ValidationPolicy(allowed_node_types={"start", "end"})
    text = block("/dynamic/n", 'type: assign\nassign:\n  "a": "1"')
    assert error_codes(text, policy) == {E.NODE_TYPE_NOT_ALLOWED}


@pytest.mark.parametrize(
    "body",
    [
        "type: end\ntermination_mode: later",
        'type: generate_subgraph\nprompt_template: "x"\noutput_keys: ["p"]\nsignature_validation: maybe',
        'type: join\njoin:\n  wait_for: ["/dynamic/a"]\n  merge_strategy: coin_flip',
    ],
)
def test_keyword_values(body: str) -> None:
    text = doc(block("/dynamic/n", body), block("/dynamic/a", "type: end"))
    assert error_codes(text) == {E.INVALID_FIELD}


def test_unknown_fields_are_warnings() -> None:
    text = block("/dynamic/n", "type: end\ncolour: blue")
    diags = check_text(text)
    assert [(d.code, d.severity, d.line) for d in diags] == [(E.INVALID_FIELD, Severity.WARNING, 5)]


def test_references() -> None:
    nodes = (
        '  - id: "start"\n    type: start\n    next: ["/dynamic/d/nope", "end", "/lib/ok@v1"]\n'
        '  - id: "end"\n    type: end\n    on_error: "/dynamic/zz"\n'
    )
    policy = ValidationPolicy(external_paths={"/lib/ok"})
    diags = errors(sub("/dynamic/d", nodes), policy)
    assert [(d.code, d.line) for d in diags] == [(E.UNRESOLVED_REFERENCE, 8)] * 2 + [
        (E.UNRESOLVED_REFERENCE, 11)
    ]
    assert "/dynamic/d/end" in diags[1].message  # the hint names the full path
    for target in (
        "/__system__/end_soft",
        "/__system__/budget_exceeded",
        "/end_soft",
        "{{ next_step }}",
    ):
        ok = sub("/dynamic/d", f'  - id: "s"\n    type: start\n    next: ["{target}"]\n')
        assert not errors(ok), target


def test_dynamic_targets_of_generators_are_warnings() -> None:
    nodes = (
        '  - id: "g"\n    type: generate_subgraph\n    prompt_template: "plan"\n'
        '    output_keys: ["p"]\n    next: ["/dynamic/later"]\n'
    )
    text = sub("/dynamic/d", nodes)
    assert not errors(text)
    assert E.UNRESOLVED_REFERENCE in warning_codes(text)


def test_assert_fork_join_generate_targets() -> None:
    nodes = (
        '  - id: "a"\n    type: assert\n    condition: "{{ x }}"\n    on_failure: "/main/q"\n'
        '  - id: "f"\n    type: fork\n    fork:\n      branches: ["/main/q2"]\n'
        '  - id: "j"\n    type: join\n    join:\n      wait_for: ["/main/q3"]\n'
        '  - id: "g"\n    type: generate_subgraph\n    prompt_template: "p"\n'
        '    output_keys: ["k"]\n    on_signature_violation: "/main/q4"\n'
    )
    diags = errors(sub("/dynamic/d", nodes))
    assert [(d.code, d.block) for d in diags] == [
        (E.UNRESOLVED_REFERENCE, "/dynamic/d/a"),
        (E.UNRESOLVED_REFERENCE, "/dynamic/d/f"),
        (E.UNRESOLVED_REFERENCE, "/dynamic/d/j"),
        (E.UNRESOLVED_REFERENCE, "/dynamic/d/g"),
    ]


def test_cycles() -> None:
    nodes = (
        '  - id: "a"\n    type: start\n    next: ["/dynamic/d/b"]\n'
        '  - id: "b"\n    type: assign\n    assign:\n      "x": "1"\n    next: ["/dynamic/d/c"]\n'
        '  - id: "c"\n    type: assert\n    condition: "{{ x }}"\n    on_failure: "/dynamic/d/b"\n'
    )
    diags = errors(sub("/dynamic/d", nodes))
    assert [(d.code, d.block, d.line) for d in diags] == [(E.CYCLE, "/dynamic/d/b", 9)]
    assert "/dynamic/d/b -> /dynamic/d/c -> /dynamic/d/b" in diags[0].message
    self_loop = sub("/dynamic/s", '  - id: "a"\n    type: start\n    next: ["/dynamic/s/a"]\n')
    assert error_codes(self_loop) == {E.CYCLE}
    # a cycle through a subgraph path (jumping to a subgraph enters at its entry)
    across = doc(
        sub("/dynamic/x", '  - id: "a"\n    type: start\n    next: ["/dynamic/y"]\n'),
        sub("/dynamic/y", '  - id: "b"\n    type: start\n    next: ["/dynamic/x"]\n'),
    )
    assert error_codes(across) == {E.CYCLE}


def test_join_dependency_cycle() -> None:
    nodes = (
        '  - id: "s"\n    type: start\n    next: ["/dynamic/d/j"]\n'
        '  - id: "j"\n    type: join\n    join:\n      wait_for: ["/dynamic/d/w"]\n'
        '    next: ["/dynamic/d/w"]\n'
        '  - id: "w"\n    type: end\n'
    )
    assert error_codes(sub("/dynamic/d", nodes)) == {E.CYCLE}


def test_unreachable_nodes_are_warnings() -> None:
    nodes = '  - id: "s"\n    type: start\n  - id: "lost"\n    type: end\n'
    text = sub("/dynamic/d", nodes)
    diags = check_text(text)
    assert [(d.code, d.severity, d.block) for d in diags] == [
        (E.UNREACHABLE_NODE, Severity.WARNING, "/dynamic/d/lost")
    ]


def test_merge_conflict_at_join() -> None:
    nodes = (
        '  - id: "s"\n    type: fork\n    fork:\n      branches: ["/dynamic/d/a", "/dynamic/d/b"]\n'
        '  - id: "a"\n    type: tool_call\n    tool: "t"\n    output_keys: ["r"]\n'
        '  - id: "b"\n    type: tool_call\n    tool: "t"\n    output_keys: ["r"]\n'
        '  - id: "j"\n    type: join\n    join:\n      wait_for: ["/dynamic/d/a", "/dynamic/d/b"]\n'
    )
    diags = errors(sub("/dynamic/d", nodes))
    assert [(d.code, d.block, d.line) for d in diags] == [
        (E.CTX_MERGE_CONFLICT, "/dynamic/d/j", 20)
    ]
    relaxed = nodes + "      merge_strategy: last_write_wins\n"
    assert not errors(sub("/dynamic/d", relaxed))


TOOL = (
    '  - id: "s"\n    type: start\n    next: ["/dynamic/d/t"]\n'
    '  - id: "t"\n    type: tool_call\n    tool: "web_search"\n'
    '    arguments:\n      "query": "q"\n      "colour": "red"\n    output_keys: ["r"]\n'
)


def test_tools_granted_and_arguments() -> None:
    text = sub("/dynamic/d", TOOL)
    assert error_codes(text, ValidationPolicy(granted_tools={"rank"})) == {E.TOOL_NOT_GRANTED}
    assert error_codes(text, ValidationPolicy(granted_tools=())) == {E.TOOL_NOT_GRANTED}
    policy = ValidationPolicy(tool_schemas={"web_search": (("query", "when"), ("limit",))})
    diags = errors(text, policy)
    assert [(d.code, d.line) for d in diags] == [(E.TOOL_ARGUMENTS, 12), (E.TOOL_ARGUMENTS, 12)]
    assert "when" in diags[0].message and "colour" in diags[1].message
    # schemas without an explicit grant: the schema names are the grant
    other = ValidationPolicy(tool_schemas={"rank": (("items",), ())})
    assert error_codes(text, other) == {E.TOOL_NOT_GRANTED}


def test_declared_permissions_warn_about_missing_tool() -> None:
    text = sub("/dynamic/d", TOOL, 'permissions: ["tool:rank"]\n')
    assert E.TOOL_NOT_GRANTED in warning_codes(text)
    ok = sub("/dynamic/d", TOOL, 'permissions: ["tool:web_search"]\n')
    assert E.TOOL_NOT_GRANTED not in warning_codes(ok)


def test_resources_and_capabilities() -> None:
    resources = block(
        "/__meta__/resources",
        'type: resource_declare\nresources:\n  - type: tool\n    name: "rank"',
    )
    assert error_codes(doc(resources, sub("/dynamic/d", TOOL))) == {E.RESOURCE_UNAVAILABLE}
    gen = block("/dynamic/g", 'type: generate_subgraph\nprompt_template: "p"\noutput_keys: ["k"]')
    assert error_codes(doc(resources, gen)) == {E.UNSUPPORTED_CAPABILITY}
    code = block("/dynamic/c", 'type: codelet_call\nruntime: "python3"\ncode: "print(1)"')
    assert error_codes(doc(resources, code)) == {E.UNSUPPORTED_CAPABILITY}
    # without declarations codelet_call is only a warning: the runtime ignores it
    assert warning_codes(code) == {E.UNSUPPORTED_CAPABILITY}


def test_templates() -> None:
    bad = block("/dynamic/a", 'type: assign\nassign:\n  "x": "{{ oops + }}"')
    diags = errors(bad)
    assert [(d.code, d.line) for d in diags] == [(E.TEMPLATE_SYNTAX, 5)]
    cond = block("/dynamic/c", 'type: assert\ncondition: "len(x) >"')
    assert error_codes(cond) == {E.TEMPLATE_SYNTAX}
    text = block(
        "/dynamic/t",
        'type: llm_call\nprompt_template: "{{ city }} {{ secret }} {{ inputs.a }}"\n'
        'output_keys: ["r"]',
    )
    assert not errors(text)  # without available_vars nothing is checked
    warn = ValidationPolicy(available_vars={"city"})
    diags = check_text(text, warn)
    assert [(d.code, d.severity) for d in diags] == [(E.UNKNOWN_VARIABLE, Severity.WARNING)]
    assert "'secret'" in diags[0].message
    strict = ValidationPolicy(available_vars={"city": "string"}, unknown_var_severity="error")
    assert error_codes(text, strict) == {E.UNKNOWN_VARIABLE}


_CHAIN = """  - id: "start"
    type: start
    next: ["/dynamic/d/a"]
  - id: "a"
    type: tool_call
    tool: "search"
    arguments: {"q": "{{ city }}"}
    output_keys: ["hits"]
    next: ["/dynamic/d/b"]
  - id: "b"
    type: tool_call
    tool: "rank"
    arguments: {"items": "{{ %s }}"}
    output_keys: ["ranked"]
"""


def test_a_template_reads_an_output_only_after_a_node_that_writes_it() -> None:
    policy = ValidationPolicy(available_vars={"city"})
    ok = sub("/dynamic/d", _CHAIN % "hits")
    assert not errors(ok, policy)
    assert not errors(sub("/dynamic/d", _CHAIN % "$.hits"), policy)  # the same root
    # b's own output, read by b itself: nothing writes it before b runs
    own = errors(sub("/dynamic/d", _CHAIN % "ranked"), policy)
    assert [(d.code, d.block) for d in own] == [(E.READ_BEFORE_WRITE, "/dynamic/d/b")]
    assert "/dynamic/d/b" in own[0].message and "ranked" in own[0].message
    # a reads what b writes later
    later = sub("/dynamic/d", (_CHAIN % "hits").replace('"q": "{{ city }}"', '"q": "{{ ranked }}"'))
    assert [(d.code, d.block) for d in errors(later, policy)] == [(E.READ_BEFORE_WRITE, "/dynamic/d/a")]
    assert not errors(later)  # without available_vars nothing is checked


def test_signature_outputs_must_be_written() -> None:
    text = sub("/dynamic/s", '  - id: "a"\n    type: end\n', 'signature: "() -> answer"\n')
    assert warning_codes(text) == {E.SIGNATURE_VIOLATION}


def test_validate_accepts_document_built_in_code() -> None:
    doc_ = parse(SIMPLE_DYNAMIC)
    assert validate(doc_) == []
    assert validate(doc_, None) == []


def test_policy_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        ValidationPolicy(allowed_node_types={"teleport"})
    with pytest.raises(ValueError):
        ValidationPolicy(max_nodes=0)
    with pytest.raises(ValueError):
        ValidationPolicy(tool_schemas={"t": "query"})
    with pytest.raises(ValueError):
        ValidationPolicy(granted_tools="web_search")
