"""The planner offers the standard library where the permissions grant its prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentic_llm.cli.main import main
from agentic_llm.planner import GenerateRequest, plan

TOOLS = [{"name": "fetch_page", "arguments": [{"name": "url", "type": "string"}]}]


def request(perms: list[str] | None, library: list[dict[str, str]] | None = None) -> GenerateRequest:
    body: dict[str, object] = {"target_path": "/dynamic/p", "prompt": "fetch and recover",
                               "tools": TOOLS, "library": library or []}
    if perms is not None:
        body["context"] = {"permissions": perms}
    return GenerateRequest.from_json(body)


def test_granted_prefix_makes_the_standard_library_callable() -> None:
    p = plan(request(["tool: fetch_page", "lib: /lib/reasoning"]))
    paths = {e.path for e in p.library}
    assert "/lib/reasoning/try_catch" in paths and "/lib/reasoning/iper_loop" in paths
    assert all(path.startswith("/lib/reasoning/") for path in paths)
    assert "/lib/reasoning/try_catch" in p.external_targets
    entry = next(e for e in p.library if e.path == "/lib/reasoning/try_catch")
    assert entry.signature == "(try_block: string, catch_block: string) -> success: boolean"
    assert "/lib/reasoning/try_catch" in plan(request(["lib:/lib"])).external_targets


@pytest.mark.parametrize("perms", [None, ["tool:fetch_page"]])
def test_without_a_lib_grant_it_is_not_offered(perms: list[str] | None) -> None:
    p = plan(request(perms))
    assert not any(t.startswith("/lib/") for t in p.external_targets)


def test_the_request_can_still_add_and_override_entries() -> None:
    own = [{"path": "/lib/reasoning/try_catch", "signature": "(x: string) -> y: string"},
           {"path": "/lib/custom/thing", "signature": "(a: string) -> b: string"}]
    p = plan(request(["lib:/lib"], own))
    by_path = {e.path: e for e in p.library}
    assert by_path["/lib/reasoning/try_catch"].signature == "(x: string) -> y: string"
    assert "/lib/custom/thing" in by_path and "/lib/math/add" in by_path


def test_plan_cli_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    req = tmp_path / "req.json"
    req.write_text(json.dumps({"target_path": "/dynamic/p", "prompt": "p", "tools": TOOLS,
                               "context": {"permissions": ["tool: fetch_page", "lib: /lib/memory"]}}))
    assert main(["plan", "--request", str(req), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "/lib/memory/vector/recall" in out["external_targets"]
    assert out["tools"] == ["fetch_page"]
