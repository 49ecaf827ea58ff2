"""Identifier-resolving API requests: lookups first, identifiers never written as literals."""

from __future__ import annotations

import random
import re

import pytest

from agentic_llm.benchmarks.nestful import tool_json
from training.api_families import (
    DIRECT,
    FAMILIES,
    _Builder,
    distractors,
    iter_requests,
    make_request,
)
from training.chat_corpus import TOOLS_PER_REQUEST, family_examples, nestful_answer

REF = re.compile(r"^\$(var\d+)\.(\w+)\$$")


def test_every_phrasing_fills_the_required_parameters() -> None:
    rng = random.Random(0)
    for family in FAMILIES:
        assert family.lookup.params[0].kind == "name"
        for action in family.actions:
            kinds = {p.kind for p in action.api.params}
            assert "id" in kinds, f"{action.api.verb} reads no identifier"
            for goal in action.goals:
                b = _Builder(rng)
                b.chain(family, [(action, goal)], "camel", list(family.names[:2]))  # raises if a slot is unsaid
                assert "{a}" in goal and (("{b}" in goal) == ("id2" in kinds)), goal
    for provider, action in DIRECT:
        for goal in action.goals:
            _Builder(rng).action(provider, action, "camel", goal, {})


def test_identifier_arguments_read_the_lookup_of_their_own_provider() -> None:
    shapes = set()
    for fr in iter_requests(300, 5):
        by_label = {c["label"]: c for c in fr.calls}
        lookups = 0
        for call in fr.calls:
            for value in call["arguments"].values():
                m = REF.match(str(value))
                if m:
                    producer = by_label[m.group(1)]
                    assert fr.calls.index(producer) < fr.calls.index(call)  # an earlier call
                    assert "search" in producer["name"].lower()  # a lookup ...
                    # ... of the same provider, named in the same style
                    assert producer["name"][:4].lower() == call["name"][:4].lower()
                    lookups += 1
            for name, value in call["arguments"].items():
                if name.lower().endswith(("id", "_id", "key", "symbol")) and not REF.match(str(value)):
                    pytest.fail(f"{call['name']}.{name} takes a literal {value!r}")
        shapes.add((len(fr.calls), lookups > 0))
        assert {c["name"] for c in fr.calls} == {t["name"] for t in fr.tools}
    assert len(shapes) >= 5  # one call, chains, two lookups, two parts, ...


def test_distractors_come_from_other_providers() -> None:
    rng = random.Random(1)
    fr = make_request(rng)
    others = distractors(rng, set(fr.brands))
    own = {t["name"] for t in fr.tools}
    assert own.isdisjoint(t["name"] for t in others) and len(others) >= TOOLS_PER_REQUEST


def test_family_examples_are_plans_of_the_gold_calls() -> None:
    from agentic_llm.planner.chat import ChatTemplate

    chat = ChatTemplate("{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    records = list(family_examples(40, 3, chat))
    assert len(records) == 40
    for r in records:
        tools = r["request"]["tools"]
        assert len(tools) <= TOOLS_PER_REQUEST and all(t.get("output") for t in tools)
        assert " -> " in r["prompt"]  # the output fields that name the identifier
    assert sum("{{ var" in r["answer"] for r in records) >= 30  # most read a lookup's output
    # the conversion is NESTFUL's own: a lookup's output key is read as {{ varN }}
    fr = next(f for f in iter_requests(200, 3) if len(f.calls) == 3 and "$var1." in str(f.calls[2])
              and "$var2." in str(f.calls[2]))
    doc = nestful_answer(list(fr.calls), {t["name"]: t for t in map(tool_json, fr.tools)})
    assert doc is not None
    third = [n for n in doc.blocks[0].nodes if n.type == "tool_call"][2]
    assert "{{ var1 }}" in dict(third.arguments).values() and "{{ var2 }}" in dict(third.arguments).values()
