"""``agentic-llm generate`` end to end on the shipped model, and its flag parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentic_llm.cli.generate import parse_tool_flag
from agentic_llm.cli.main import main
from agentic_llm.errors import AgenticError, ErrorCode

REPO = Path(__file__).resolve().parents[2]


def test_parse_tool_flag() -> None:
    assert parse_tool_flag("web_search:query,limit?->results") == {
        "name": "web_search",
        "arguments": [{"name": "query", "type": "string", "required": True},
                      {"name": "limit", "type": "string", "required": False}],
        "output": "results",
    }
    assert parse_tool_flag("ping") == {"name": "ping", "arguments": []}
    with pytest.raises(AgenticError) as err:
        parse_tool_flag("bad name:x")
    assert err.value.code is ErrorCode.INVALID_REQUEST


def test_generate_json_from_flags(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["generate", "--prompt", "Search the web for {{ topic }}, then summarize the results.",
               "--var", "topic=llamas", "--tool", "web_search:query,limit?->results",
               "--tool", "summarize:text,max_words?->summary", "--max-nodes", "6", "--json",
               "--timeout", "600", "--threads", "1"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0, out
    assert out["valid"] is True and out["constrained"] is True
    assert out["text"].startswith("### AgenticDSL `/dynamic/plan_1`")
    assert out["diagnostics"] == [] or all(d["severity"] == "warning" for d in out["diagnostics"])
    assert 1 <= out["node_count"] <= 6
    t = out["timings"]
    assert t["output_tokens"] == t["decode_steps"] + t["jump_forward_tokens"]
    assert t["ttft_s"] >= 0 and t["tokens_per_s"] > 0


def test_generate_from_request_file_human_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = (REPO / "bench" / "validity_requests.jsonl").read_text(encoding="utf-8").splitlines()[0]
    req = tmp_path / "req.json"
    req.write_text(line, encoding="utf-8")
    rc = main(["generate", "--request", str(req), "--timeout", "600", "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "✓ valid against the plan" in out
    assert "TTFT" in out and "jump-forward" in out


def test_generate_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["generate", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "ERR_INVALID_REQUEST"
    assert main(["generate", "--prompt", "x", "--path", "/lib/evil"]) == 1  # a plan refusal
    assert "ERR_NAMESPACE_VIOLATION" in capsys.readouterr().err
    missing = tmp_path / "nope"
    assert main(["generate", "--prompt", "x", "--model", str(missing)]) == 2
    assert "ERR_MODEL_NOT_FOUND" in capsys.readouterr().err
