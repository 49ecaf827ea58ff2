"""Surface variety of the instruct corpus: aliases, phrasings, lookup chains."""

from __future__ import annotations

import random
import re
import string

from agentic_llm import dsl
from agentic_llm.dsl import nodes as ast
from training.corpus import make_example
from training.pools import TOOLS
from training.variants import ALIASES, LOOKUPS, PHRASES, consumer

_FIELDS = string.Formatter()


def _placeholders(phrase: str) -> set[str]:
    return {f for _, f, _, _ in _FIELDS.parse(phrase) if f}


def test_every_alias_names_one_tool_only() -> None:
    canonical = {t.name for t in TOOLS} | {lk.tool.name for lk in LOOKUPS}
    seen: dict[str, str] = {}
    for tool, aliases in ALIASES.items():
        assert tool in canonical
        for a in aliases:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", a), a
            assert a not in canonical, f"{a} is already a tool's own name"
            assert seen.setdefault(a, tool) == tool, f"{a} names {seen[a]} and {tool}"


def test_every_phrasing_asks_for_the_same_arguments() -> None:
    by_name = {t.name: t for t in TOOLS}
    for tool, phrases in PHRASES.items():
        want = _placeholders(by_name[tool].phrase)
        assert want == {a.name for a in by_name[tool].args if a.required}
        for p in phrases:
            assert _placeholders(p) == want, (tool, p)


def test_lookup_feeds_an_argument_of_its_consumer() -> None:
    for lk in LOOKUPS:
        assert lk.arg in {a.name for a in consumer(lk).args if a.required}


def _calls(answer: str) -> list[ast.ToolCall]:
    doc = dsl.parse(answer)
    return [n for b in doc.blocks for n in b.nodes if isinstance(n, ast.ToolCall)]


def test_varied_examples_call_the_granted_names_and_chain_lookups() -> None:
    rng = random.Random(7)
    renamed = chained = 0
    for _ in range(300):
        ex = make_example(rng, vary=True)  # raises if the answer does not validate
        granted = {t["name"] for t in ex.request["tools"]}
        calls = _calls(ex.answer)
        assert {c.tool for c in calls} <= granted
        renamed += any(c.tool in {a for al in ALIASES.values() for a in al} for c in calls)
        for first, second in zip(calls, calls[1:], strict=False):
            lk = next((lk for lk in LOOKUPS if lk.tool.name == first.tool), None)
            if lk is not None:
                key = first.output_keys[0]
                assert dict(second.arguments)[lk.arg] == "{{ " + key + " }}"
                chained += 1
    assert renamed > 100 and chained > 20, (renamed, chained)


def test_without_vary_the_stream_is_unchanged() -> None:
    """The tiny model's corpus (training.corpus) draws the same examples as before."""
    a = make_example(random.Random(3))
    assert all(t["name"] in {x.name for x in TOOLS} for t in a.request["tools"])
    assert a.answer == make_example(random.Random(3), vary=False).answer
