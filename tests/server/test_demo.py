"""``agentic-llm demo`` against the test model: every answer valid, the repeat a cache hit."""

from __future__ import annotations

import io
from typing import Any


def test_demo_runs_end_to_end(pipeline: Any) -> None:
    from agentic_llm.cli.demo import run_demo
    from agentic_llm.config import ServerConfig
    from agentic_llm.serving import Admission

    buf = io.StringIO()
    view = pipeline.with_admission(Admission(8, 16))
    cfg = ServerConfig.from_dict({"listen": "127.0.0.1:0"})
    assert run_demo(cfg, view, out=buf) == 0
    text = buf.getvalue()
    assert "health: SERVING" in text
    assert "  plan: start | " in text  # the first plan's nodes, in document order
    assert "same request again" in text and "CACHE HIT" in text
    assert text.count("GenerateFork[") == 3
    assert "stream: node 0" in text


def test_demo_and_serve_are_commands() -> None:
    from agentic_llm.cli.main import COMMAND_MODULES, build_parser

    assert "agentic_llm.cli.serve" in COMMAND_MODULES and "agentic_llm.cli.demo" in COMMAND_MODULES
    args = build_parser().parse_args(["demo", "--model", "/x"])
    assert args.model == "/x"


def test_plan_line_shows_tool_calls_with_arguments_and_outputs() -> None:
    from agentic_llm.cli.demo import plan_line
    from agentic_llm.serving.result import AstNodeInfo

    class Result:
        nodes = (AstNodeInfo("start", "start", "/d/start"),
                 AstNodeInfo("s", "tool_call", "/d/s", fields={
                     "tool": "web_search", "arguments": {"query": "hotels in {{ city }} under {{ budget }}"},
                     "output_keys": ["results"]}),
                 AstNodeInfo("done", "end", "/d/done"))

    assert plan_line(Result()) == ("  plan: start | web_search(query=hotels in {{ city }} unde...) -> results"
                                   " | end")
