"""bench quality: NESTFUL conversion, plan scoring, and one real row on the tiny model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from agentic_llm.benchmarks.nestful import GoldCall, gold_edges, load_split, tool_name
from agentic_llm.benchmarks.plan_score import extract_calls, prf, score_plan
from agentic_llm.benchmarks.quality import heldout_cases, run_row, summarize_row
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import GenerateRequest, plan


def node(type_: str, **fields):  # type: ignore[no-untyped-def]
    return SimpleNamespace(type=type_, fields=fields)


def test_executable_split_converts_to_plannable_requests() -> None:
    cases = load_split("executable")
    assert len(cases) == 85
    first = cases[0]
    assert first.gold_tools == ("SkyScrapperSearchAirport", "SkyScrapperSearchAirport",
                                "SkyScrapperFlightSearch", "TripadvisorSearchLocation",
                                "TripadvisorSearchHotels")
    # var1 and var2 (airports, two fields each) feed the flight search; var4 the hotels:
    # one edge per (producer call, consumer call)
    assert sorted(gold_edges(first.gold)) == sorted(
        [("SkyScrapperSearchAirport", "SkyScrapperFlightSearch")] * 2
        + [("TripadvisorSearchLocation", "TripadvisorSearchHotels")])
    names = {t["name"] for t in first.request["tools"]}
    assert len(names) == 39 and tool_name("WeatherAPI.com_Time_Zone_API") in names
    flight = next(t for t in first.request["tools"] if t["name"] == "SkyScrapperFlightSearch")
    req_flags = [a["required"] for a in flight["arguments"]]
    assert req_flags == sorted(req_flags, reverse=True)  # required arguments first
    for c in cases:
        plan(GenerateRequest.from_json(c.request))  # every request is plannable


def test_tool_lines_list_output_fields_unless_turned_off() -> None:
    from agentic_llm.benchmarks.nestful import OUTPUT_FIELDS, tool_json

    api = {"name": "Geo.lookup", "description": "find a place",
           "query_parameters": {"q": {"type": "string", "required": True}},
           "output_parameters": {f: {"type": "string"} for f in ("placeId", "lat", "lon", "name", "country")}}
    tool = tool_json(api)
    assert tool["name"] == "Geo_lookup"
    assert tool["output"] == "placeId, lat, lon, name, ..." and OUTPUT_FIELDS == 4
    assert "output" not in tool_json(api, outputs=False)
    two = tool_json({**api, "output_parameters": {"a": {}, "b": {}}})
    assert two["output"] == "a, b"
    # the planner shows it on the tool's line, where a later call's argument finds it
    req = GenerateRequest.from_json({"target_path": "/dynamic/p", "prompt": "x", "tools": [tool]})
    assert "Geo_lookup(q) -> placeId, lat, lon, name, ..." in plan(req).render_prompt()
    from agentic_llm.benchmarks.quality import ROWS, tool_outputs

    # each adapter row gets the format it was trained on; --tool-outputs on/off overrides
    assert [r for r in ROWS if not tool_outputs(r)] == ["adapter", "adapter-free"]
    assert tool_outputs("adapter-api") and tool_outputs("adapter", "on") and not tool_outputs("tiny", "off")
    first = load_split("sgd")[0].request["tools"][0]
    assert first["output"] and "output" not in load_split("sgd", outputs=False)[0].request["tools"][0]


def test_tools_per_request_keeps_the_gold_tools() -> None:
    for c in load_split("sgd", tools_per_request=5):
        granted = {t["name"] for t in c.request["tools"]}
        assert set(c.gold_tools) <= granted and len(granted) <= max(5, len(set(c.gold_tools)))
    with pytest.raises(AgenticError) as e:
        load_split("nope")
    assert e.value.code is ErrorCode.INVALID_REQUEST


def test_scoring_tools_edges_exact_one_node() -> None:
    nodes = [node("start"),
             node("tool_call", tool="search", arguments={"query": "{{ topic }}"}, output_keys=["hits"]),
             node("tool_call", tool="summarize", arguments={"text": "{{ hits.items }}"}, output_keys="summary"),
             node("end")]
    calls = extract_calls(nodes)
    assert calls.tools == ("search", "summarize") and calls.edges == (("search", "summarize"),)
    s = score_plan(calls, ["search", "summarize"], [("search", "summarize")])
    assert (s.tool_f1, s.edge_f1, s.exact, s.one_node, s.needed_called) == (1.0, 1.0, True, False, True)
    s = score_plan(calls, ["search", "translate", "summarize"], [("search", "translate")])
    assert s.tool_p == 1.0 and s.tool_r == pytest.approx(2 / 3) and s.edge_f1 == 0.0 and not s.exact
    empty = score_plan(extract_calls([node("start")]), ["search"], [])
    assert empty.one_node and empty.tool_f1 == 0.0 and not empty.needed_called
    assert prf([], []) == (1.0, 1.0, 1.0) and prf(["a", "a"], ["a"]) == (0.5, 1.0, pytest.approx(2 / 3))


def test_repeated_calls_and_self_edges_are_counted_against_the_gold() -> None:
    from agentic_llm.benchmarks.quality import _Outcome, _repeats

    looping = {"tools": ["search", "search", "search"], "edges": [["search", "search"], ["search", "search"]],
               "gold_tools": ["find_id", "search"], "gold_edges": [["find_id", "search"]]}
    plain = {"tools": ["find_id", "search"], "edges": [["find_id", "search"]],
             "gold_tools": ["find_id", "search"], "gold_edges": [["find_id", "search"]]}
    got = _repeats([_Outcome(None, True, 0.0, case=looping), _Outcome(None, True, 0.0, case=plain),
                    _Outcome(None, False, 0.0, "ERR_BUDGET_EXCEEDED")])
    assert got["repeated_call_rate"] == pytest.approx(2 / 5) and got["self_edge_rate"] == pytest.approx(2 / 3)
    assert got["gold_repeated_call_rate"] == 0.0 and got["gold_self_edge_rate"] == 0.0


def test_heldout_set_lists_needed_tools_among_granted() -> None:
    cases = heldout_cases()
    assert len(cases) >= 20
    for c in cases:
        granted = {t["name"] for t in c.request["tools"]}
        assert c.gold_tools and set(c.gold_tools) <= granted and len(granted) >= 3
        plan(GenerateRequest.from_json(c.request))


def test_tiny_row_runs_through_the_pipeline() -> None:
    cases = heldout_cases()[:2]
    outs = run_row("tiny", cases, concurrency=2, max_tokens=160, progress=False)
    summary = summarize_row(outs)
    assert summary["requests"] == 2 and summary["errors"] == []
    assert summary["valid_rate"] == 1.0  # constrained output always validates
    assert 0.0 <= summary["tool_f1"] <= 1.0 and summary["latency_median_s"] > 0
    assert all(o.score is not None for o in outs)
    assert [o.case["id"] for o in outs if o.case] == [c.case_id for c in cases]
    assert GoldCall("a", "var1", ()).name == "a"
