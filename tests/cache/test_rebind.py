"""Fuzzy rebinding never produces a wrong answer: it refuses, or it gives exactly the
text the same template would have produced with the new values."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agentic_llm.cache.rebind import rebind
from agentic_llm.dsl import parse
from tests.cache.helpers import hotel_text, make_plan

# words of the template, the rules and the tools, plus ordinary values and pieces of them
WORDS = ["Rome", "Paris", "Ro", "me", "in", "under", "hotels", "search", "start", "rank",
         "results", "query", "done", "dynamic", "plan_1", "120", "1", "20", "a b", "New York",
         "York", "hotels in", "{{ city }}", 'say "hi"', "x\\y", "Zürich", "items"]
values = st.sampled_from(WORDS) | st.text(alphabet="abcRo 12\"\\{}", min_size=1, max_size=6)
budgets = st.integers(0, 300)
RESERVED = "\n".join(line for line in make_plan().render_prompt().splitlines()
                     if not line.startswith("VALUES:"))


@settings(max_examples=150, deadline=None)
@given(old_city=values, new_city=values, old_budget=budgets, new_budget=budgets)
def test_rebind_is_exact_or_refuses(old_city: str, new_city: str, old_budget: int, new_budget: int) -> None:
    text = hotel_text(old_city, old_budget)
    r = rebind(text, {"city": old_city, "budget": old_budget}, {"city": new_city, "budget": new_budget},
               reserved=RESERVED)
    if r.text is not None:
        assert r.text == hotel_text(new_city, new_budget)


def test_typical_values_rebind_and_parse() -> None:
    r = rebind(hotel_text("Rome", 120), {"city": "Rome", "budget": 120}, {"city": "New York", "budget": 95},
               reserved=RESERVED)
    assert r.text == hotel_text("New York", 95) and r.replaced == 2
    parse(r.text)
    quoted = rebind(hotel_text("Rome", 120), {"city": "Rome", "budget": 120},
                    {"city": 'Say "x"', "budget": 120}, reserved=RESERVED)
    assert quoted.text == hotel_text('Say "x"', 120)
    parse(quoted.text)


def test_refusals_name_their_reason() -> None:
    base = {"city": "Rome", "budget": 120}
    assert "prompt" in rebind(hotel_text("hotels", 120), {**base, "city": "hotels"}, base,
                              reserved=RESERVED).reason
    assert "outside a value string" in rebind(hotel_text("search", 120), {**base, "city": "search"},
                                              base).reason
    assert "longer word" in rebind(hotel_text("Rome", 120), {**base, "city": "Rom"}, base).reason
    assert "not a scalar" in rebind(hotel_text("Rome", 120), base, {**base, "city": ["a"]}).reason
    # the budget's digits also spell part of the city: which "2" is the budget's is unknowable
    inside = rebind(hotel_text("2\\", 2), {"city": "2\\", "budget": 2}, {"city": "2\\", "budget": 0})
    assert inside.text is None and "inside the value of 'city'" in inside.reason
    unchanged = rebind(hotel_text("Rome", 120), base, dict(base))
    assert unchanged.text == hotel_text("Rome", 120) and unchanged.replaced == 0
