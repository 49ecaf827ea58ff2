"""The subgraph registry on its own (memory store): publish rules, reads, splits, promotion,
archive merging and offers, corpus export."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from agentic_llm.config import LibraryConfig
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.library import SubgraphRegistry, VersionRange, open_library
from agentic_llm.library.archive import similarity
from agentic_llm.library.corpus import export_corpus, parse_since
from agentic_llm.planner import GenerateRequest, plan
from tests.library.conftest import lib_doc


@pytest.fixture
def lib() -> SubgraphRegistry:
    reg = open_library(LibraryConfig(store="memory", promote_min_runs=3, promote_margin=0.2,
                                     admins=("ops",)))
    assert reg is not None
    return reg


def _code(exc: pytest.ExceptionInfo[AgenticError]) -> ErrorCode:
    return exc.value.code


def test_publish_validates_and_numbers_versions(lib: SubgraphRegistry) -> None:
    assert lib.publish("/lib/x", lib_doc(), tenant="a").version == 1
    assert lib.publish("/lib/x", lib_doc(" "), tenant="a").version == 2
    assert lib.publish("/lib/x@v5", lib_doc("  "), tenant="a").version == 5
    with pytest.raises(AgenticError) as e:
        lib.publish("/lib/x@v2", lib_doc(), tenant="a")
    assert _code(e) is ErrorCode.INVALID_REQUEST and "immutable" in e.value.message
    with pytest.raises(AgenticError) as e:
        lib.publish("/lib/x", lib_doc(), tenant="b")
    assert _code(e) is ErrorCode.PERMISSION_DENIED
    assert lib.publish("/lib/x", lib_doc("   "), tenant="ops").version == 6   # an admin may


@pytest.mark.parametrize("path, text, code", [
    ("/lib/x", lib_doc().replace('signature: "(a: number) -> b: number"\n', ""),
     ErrorCode.SIGNATURE_REQUIRED),
    ("/lib/z", lib_doc(), ErrorCode.NAMESPACE_VIOLATION),       # block is /lib/x, not /lib/z
    ("/lib/x", "not a document", ErrorCode.SYNTAX),
    ("/dynamic/x", lib_doc(), ErrorCode.INVALID_PATH),
    ("/lib/solved/abc", lib_doc(), ErrorCode.NAMESPACE_VIOLATION),
])
def test_publish_refuses_bad_documents(lib: SubgraphRegistry, path: str, text: str, code: ErrorCode) -> None:
    with pytest.raises(AgenticError) as e:
        lib.publish(path, text, tenant="a")
    assert _code(e) is code, e.value.message
    assert lib.list() == []


def test_get_list_ranges_and_visibility(lib: SubgraphRegistry) -> None:
    for i in range(4):
        lib.publish("/lib/x", lib_doc(" " * i), tenant="a")
    lib.publish("/lib/p", lib_doc().replace("/lib/x", "/lib/p"), tenant="a", visibility="private")
    lib.publish("/lib/s", lib_doc().replace("/lib/x", "/lib/s"), tenant="a", visibility="tenants",
                tenants=["b"])
    assert lib.get("/lib/x", tenant="z").version == 1                    # the default
    assert lib.get("/lib/x@v3", tenant="z").version == 3
    assert [d.version for d in lib.list("/lib/x", versions=">=2,<4")] == [2, 3]
    assert [d.version for d in lib.list("/lib/x", versions="v4")] == [4]
    assert {d.path for d in lib.list(tenant="b")} == {"/lib/x", "/lib/s"}
    assert {d.path for d in lib.list(tenant="a")} == {"/lib/x", "/lib/p", "/lib/s"}
    with pytest.raises(AgenticError) as e:
        lib.get("/lib/p", tenant="b")
    assert _code(e) is ErrorCode.NOT_FOUND
    with pytest.raises(AgenticError) as e:
        VersionRange.parse(">=two")
    assert _code(e) is ErrorCode.INVALID_REQUEST


def test_deprecate_moves_the_default_and_leaves_the_split(lib: SubgraphRegistry) -> None:
    lib.publish("/lib/x", lib_doc(), tenant="a")
    lib.publish("/lib/x", lib_doc(" "), tenant="a")
    lib.set_split("/lib/x", {1: 1, 2: 1}, tenant="a")
    lib.deprecate("/lib/x@v1", tenant="a")
    assert lib.get("/lib/x").version == 2
    entry = lib.entry("/lib/x")
    assert entry is not None and entry.weights == {2: 1.0}
    assert lib.get("/lib/x@v1").deprecated          # still readable by version
    with pytest.raises(AgenticError):
        lib.deprecate("/lib/x@v2", tenant="a")      # the last live version
    with pytest.raises(AgenticError) as e:
        lib.set_split("/lib/x", {1: 1}, tenant="a")
    assert "not a live version" in e.value.message


def test_delete_is_for_admins(lib: SubgraphRegistry) -> None:
    lib.publish("/lib/x", lib_doc(), tenant="a")
    lib.publish("/lib/x", lib_doc(" "), tenant="a")
    with pytest.raises(AgenticError) as e:
        lib.delete("/lib/x", tenant="a")
    assert _code(e) is ErrorCode.PERMISSION_DENIED
    assert lib.delete("/lib/x@v1", tenant="ops") == 1
    assert lib.get("/lib/x").version == 2
    assert lib.delete("/lib/x", tenant="ops") == 1
    assert lib.entry("/lib/x") is None


def test_split_is_sticky_and_weighted(lib: SubgraphRegistry) -> None:
    lib.publish("/lib/x", lib_doc(), tenant="a")
    lib.publish("/lib/x", lib_doc(" "), tenant="a")
    lib.set_split("/lib/x", {1: 3, 2: 1}, tenant="a")
    picks = Counter()
    for i in range(400):
        doc = lib.choose("/lib/x", tenant="t", dag_id=f"d{i}")
        assert doc is not None
        again = lib.choose("/lib/x", tenant="t", dag_id=f"d{i}")
        assert again is not None and again.version == doc.version      # sticky per dag_id
        picks[doc.version] += 1
    assert 240 < picks[1] < 360 and picks[1] + picks[2] == 400          # about 3:1
    lib.set_split("/lib/x", {1: 1, 2: 1}, sticky="tenant", tenant="a")
    by_tenant = {lib.choose("/lib/x", tenant="t", dag_id=f"d{i}").version for i in range(50)}  # type: ignore[union-attr]
    assert len(by_tenant) == 1                                           # sticky per tenant


def _serve(lib: SubgraphRegistry, rid: str, dag: str, text: str = "") -> int:
    req = GenerateRequest.from_json({"target_path": "/dynamic/p", "prompt": "copy {{ a }}", "tenant": "t",
                                     "dag_id": dag, "library": [{"path": "/lib/x"}],
                                     "context": {"available_vars": {"a": "number"}}})
    p = plan(req, library=lib.resolver)
    lib.note_served(rid, lib.resolver.served_record(p, text, bool(text)))
    return dict(p.library_versions)["/lib/x"]


def test_promotion_needs_min_runs_and_margin(lib: SubgraphRegistry) -> None:
    lib.publish("/lib/x", lib_doc(), tenant="a")
    lib.publish("/lib/x", lib_doc(" "), tenant="a")
    lib.set_split("/lib/x", {1: 1, 2: 1}, tenant="a")
    n = 0

    def report(success_v1: bool, success_v2: bool) -> None:
        nonlocal n
        n += 1
        v = _serve(lib, f"r{n}", f"d{n}")
        lib.report_outcome(f"r{n}", success=success_v1 if v == 1 else success_v2, tenant="t")

    for _ in range(4):
        report(True, True)
    with pytest.raises(AgenticError) as e:
        lib.promote("/lib/x", tenant="a")
    assert "not enough runs" in e.value.message or "margin" in e.value.message
    while min(lib.stats("/lib/x", 1).runs, lib.stats("/lib/x", 2).runs) < 3:
        report(True, True)
    with pytest.raises(AgenticError) as e:              # tied: no margin
        lib.promote("/lib/x", tenant="a")
    assert "margin" in e.value.message
    for _ in range(20):
        report(False, True)
    with pytest.raises(AgenticError) as e:
        lib.promote("/lib/x", version=1, tenant="a")    # v1 is not the winner
    assert "cannot promote /lib/x@v1" in e.value.message
    assert lib.promote("/lib/x", tenant="a").version == 2
    entry = lib.entry("/lib/x")
    assert entry is not None and (entry.default_version, entry.weights) == (2, {})


def test_auto_promote_on_report() -> None:
    lib = open_library(LibraryConfig(store="memory", promote_min_runs=2, promote_margin=0.5,
                                     auto_promote=True))
    assert lib is not None
    lib.publish("/lib/x", lib_doc(), tenant="a")
    lib.publish("/lib/x", lib_doc(" "), tenant="a")
    lib.set_split("/lib/x", {1: 1, 2: 1}, tenant="a")
    promoted = []
    for i in range(40):
        v = _serve(lib, f"r{i}", f"d{i}")
        promoted += lib.report_outcome(f"r{i}", success=v == 2, tenant="t").promoted
        if promoted:
            break
    assert promoted and promoted[0].version == 2
    assert lib.get("/lib/x").version == 2


def test_outcome_rules(lib: SubgraphRegistry) -> None:
    lib.publish("/lib/x", lib_doc(), tenant="a")
    _serve(lib, "r1", "d1")
    with pytest.raises(AgenticError) as e:
        lib.report_outcome("r1", success=True, tenant="intruder")
    assert _code(e) is ErrorCode.PERMISSION_DENIED
    with pytest.raises(AgenticError) as e:
        lib.report_outcome("r1", success=True, latency_ms=-1, tenant="t")
    assert _code(e) is ErrorCode.INVALID_REQUEST
    assert lib.report_outcome("r1", success=True, tenant="t").versions == ("/lib/x@v1",)
    with pytest.raises(AgenticError) as e:
        lib.report_outcome("nope", success=True, tenant="t")
    assert _code(e) is ErrorCode.NOT_FOUND


DYN = ('### AgenticDSL `/dynamic/p`\n```yaml\n# --- BEGIN AgenticDSL ---\ngraph_type: subgraph\n'
       'entry: "start"\nnodes:\n  - id: "start"\n    type: start\n    next: ["/dynamic/p/look"]\n'
       '  - id: "look"\n    type: tool_call\n    tool: "web_search"\n    arguments:\n'
       '      "query": "hotels in {{ city }}"\n    output_keys: ["results"]\n    next: ["/dynamic/p/end"]\n'
       '  - id: "end"\n    type: end\n# --- END AgenticDSL ---\n```\n')
TOOLS = [{"name": "web_search", "arguments": [{"name": "query"}]}]


def _solve(lib: SubgraphRegistry, rid: str, prompt: str, *, tenant: str = "t", tools: list | None = None,
           text: str = DYN) -> str:
    req = GenerateRequest.from_json({"target_path": "/dynamic/p", "prompt": prompt, "tenant": tenant,
                                     "tools": TOOLS if tools is None else tools,
                                     "context": {"available_vars": {"city": "string"}}})
    p = plan(req, library=lib.resolver)
    lib.note_served(rid, lib.resolver.served_record(p, text, True))
    return lib.report_outcome(rid, success=True, latency_ms=5, tenant=tenant).archived_path


def test_archive_merges_near_duplicates_and_offers_by_prompt_and_tools(lib: SubgraphRegistry,
                                                                      tmp_path: Path) -> None:
    first = _solve(lib, "r1", "Find hotels in {{ city }} and rank them by price")
    assert first.startswith("/lib/solved/")
    assert _solve(lib, "r2", "Find hotels in {{ city }}, and rank them by price.") == first
    other = _solve(lib, "r3", "Book a table for two in {{ city }} tonight please")
    assert other != first
    entries = {e.path: e for e in lib.archive.entries("t")}
    assert entries[first].successes == 2 and len(entries[first].prompts) == 2
    lib_text = entries[first].library_text()
    assert f"### AgenticDSL `{first}`" in lib_text and "/dynamic/p" not in lib_text
    assert 'signature: "(city: string)"' in lib_text

    def offered(prompt: str, *, tools: list | None = None, tenant: str = "t",
                ctx: dict | None = None) -> tuple[str, ...]:
        req = GenerateRequest.from_json({
            "target_path": "/dynamic/q", "prompt": prompt, "tenant": tenant,
            "tools": TOOLS if tools is None else tools,
            "context": {"available_vars": ctx if ctx is not None else {"city": "string"}}})
        return plan(req, library=lib.resolver).offered

    assert offered("Find cheap hotels in {{ city }} and rank them by price") == (first,)
    assert offered("Find cheap hotels in {{ city }} and rank them by price", tools=[]) == ()
    assert offered("Find cheap hotels in {{ city }} and rank them by price", tenant="u") == ()
    assert offered("Find cheap hotels in {{ city }} and rank them by price", ctx={"city": "number"}) == ()
    assert offered("Translate this poem into French") == ()
    assert similarity("a b {{ x }}", "a b {{x}}") == 1.0

    out = export_corpus(lib, tmp_path / "c", since=0.0)
    lines = [json.loads(x) for x in (tmp_path / "c" / "train.jsonl").read_text().splitlines()]
    assert out.written == len(lines) == 2 and out.skipped == 0
    assert all(set(x) >= {"request", "prompt", "answer"} for x in lines)
    assert export_corpus(lib, tmp_path / "d", since=parse_since("2999-01-01")).written == 0


def test_invalid_text_is_not_archived(lib: SubgraphRegistry) -> None:
    assert _solve(lib, "r1", "Find hotels in {{ city }}", text="nodes: [broken") == ""
    assert lib.archive.entries("t") == []


def test_parse_since() -> None:
    assert parse_since("all") == 0.0
    assert parse_since("2d", now=1_000_000.0) == 1_000_000.0 - 2 * 86400
    assert parse_since("1700000000") == 1_700_000_000.0
    assert parse_since("2026-01-01T00:00:00Z") == 1767225600.0
    with pytest.raises(AgenticError) as e:
        parse_since("yesterday")
    assert _code(e) is ErrorCode.INVALID_REQUEST


def test_library_config_is_validated() -> None:
    from agentic_llm.config import ServerConfig

    with pytest.raises(AgenticError) as e:
        ServerConfig.from_dict({"library": {"promote_margin": 2}})
    assert "library.promote_margin" in e.value.message
    with pytest.raises(AgenticError):
        ServerConfig.from_dict({"library": {"store": "nosuch"}})
    assert ServerConfig.from_dict({"library": {"store": "none"}}).library.store == "none"


def test_archive_index_sees_entries_another_registry_added(lib: SubgraphRegistry) -> None:
    other = SubgraphRegistry(lib.store, lib.config)      # e.g. another process on the same LMDB
    assert other.archive.similar("t", "Find hotels in {{ city }} and rank them", {"web_search"},
                                 {"city": "string"}) == []
    path = _solve(lib, "r1", "Find hotels in {{ city }} and rank them")
    found = other.archive.similar("t", "Find hotels in {{ city }} and rank them", {"web_search"},
                                  {"city": "string"})
    assert [e.path for _, e in found] == [path]
