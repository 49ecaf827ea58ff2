"""GenerateRequest: JSON in and out, clear ERR_INVALID_REQUEST errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import GenerateRequest

EXAMPLES = sorted(Path(__file__).resolve().parents[2].joinpath("examples/requests").glob("*.json"))


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip(path: Path) -> None:
    req = GenerateRequest.from_json(path.read_text())
    again = GenerateRequest.from_json(req.to_json())
    assert again == req
    assert GenerateRequest.from_json(req.to_json_text()) == req


def test_only_target_and_prompt_required() -> None:
    req = GenerateRequest.from_json({"target_path": "/dynamic/a", "prompt": "hi"})
    assert req.budget.max_nodes == 8
    assert req.tools == ()
    assert req.context.permissions is None


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"prompt": "x"}, "target_path"),
        ({"target_path": "/dynamic/a"}, "prompt"),
        ({"target_path": 3, "prompt": "x"}, "target_path"),
        ({"target_path": "/dynamic/a", "prompt": "x", "bogus": 1}, "bogus"),
        ({"target_path": "/dynamic/a", "prompt": "x", "budget": {"max_nodes": -1}}, "max_nodes"),
        ({"target_path": "/dynamic/a", "prompt": "x", "budget": {"max_nodes": True}}, "max_nodes"),
        ({"target_path": "/dynamic/a", "prompt": "x", "tools": [{"description": "no name"}]}, "tools[0]"),
        ({"target_path": "/dynamic/a", "prompt": "x",
          "tools": [{"name": "t", "arguments": [{"name": "a", "required": "yes"}]}]}, "required"),
        ({"target_path": "/dynamic/a", "prompt": "x", "sampling": {"top_p": 2}}, "top_p"),
        ({"target_path": "/dynamic/a", "prompt": "x", "context": {"values": {"x": float("nan")}}}, "values"),
    ],
)
def test_bad_requests_name_the_field(data: dict, fragment: str) -> None:
    with pytest.raises(AgenticError) as info:
        GenerateRequest.from_json(data)
    assert info.value.code == ErrorCode.INVALID_REQUEST
    assert fragment in info.value.message


def test_bad_json_text() -> None:
    with pytest.raises(AgenticError) as info:
        GenerateRequest.from_json("{not json")
    assert info.value.code == ErrorCode.INVALID_REQUEST


def test_to_json_is_plain_json() -> None:
    req = GenerateRequest.from_json(EXAMPLES[0].read_text())
    json.dumps(req.to_json())
