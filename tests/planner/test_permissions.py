"""Permission strings: the spec's ``tool: name`` spelling grants like ``tool:name``;
a string the planner does not understand is refused, naming it."""

from __future__ import annotations

import pytest

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import GenerateRequest, plan
from agentic_llm.planner.request import ContextState, normalize_permission

TOOLS = [
    {"name": "web_search", "arguments": [{"name": "query", "type": "string"}]},
    {"name": "rank", "arguments": [{"name": "items", "type": "string"}]},
]


def request(perms: list[str]) -> GenerateRequest:
    return GenerateRequest.from_json(
        {"target_path": "/dynamic/p", "prompt": "search", "tools": TOOLS,
         "context": {"permissions": perms}}
    )


@pytest.mark.parametrize("perm", ["tool: web_search", "tool:web_search", " tool :  web_search ",
                                  "tool:\tweb_search"])
def test_spec_spelling_grants_the_tool(perm: str) -> None:
    p = plan(request([perm]))
    assert [t.name for t in p.tools] == ["web_search"]
    assert p.denied_tools == ("rank",)


def test_other_understood_forms_are_canonical() -> None:
    assert normalize_permission("tool: *") == "tool:*"
    assert normalize_permission("lib: /lib/math") == "lib:/lib/math"
    assert normalize_permission(" llm_call ") == "llm_call"
    assert [t.name for t in plan(request(["tool: *"])).tools] == ["web_search", "rank"]
    assert "llm_call" in plan(request(["tool: rank", "llm_call"])).node_types


@pytest.mark.parametrize("perm", ["tool web_search", "tools:web_search", "tool:", "network: outbound",
                                  "tool: web_search → scope: read_only", "lib:math", "LLM_CALL"])
def test_unknown_permission_is_refused_naming_it(perm: str) -> None:
    with pytest.raises(AgenticError) as info:
        request([perm])
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert repr(perm) in info.value.message
    assert "context.permissions[0]" in info.value.message


def test_python_api_normalises_and_refuses_too() -> None:
    assert ContextState(permissions=("tool: rank",)).permissions == ("tool:rank",)
    with pytest.raises(AgenticError) as info:
        ContextState(permissions=("tool rank",))
    assert info.value.code is ErrorCode.INVALID_REQUEST
