"""The fine-tuning corpus: NESTFUL gold calls become plans the grammar writes."""

from __future__ import annotations

import pytest

from agentic_llm import dsl
from agentic_llm.benchmarks.quality import smollm2_path
from agentic_llm.dsl import nodes as ast
from agentic_llm.engine.loader import load_model
from agentic_llm.planner.chat import ChatTemplate
from training.chat_corpus import (
    TRAIN_SPLITS,
    GrammarFilter,
    chat_example,
    nestful_answer,
    nestful_examples,
)

TOOLS = {
    "find_flight": {"name": "find_flight", "arguments": [
        {"name": "origin", "type": "string", "required": True},
        {"name": "adults", "type": "integer", "required": False}]},
    "book": {"name": "book", "arguments": [
        {"name": "flight_id", "type": "string", "required": True},
        {"name": "seats", "type": "integer", "required": True}]},
}


def _calls(doc: dsl.Document) -> list[ast.ToolCall]:
    return [n for n in doc.blocks[0].nodes if isinstance(n, ast.ToolCall)]


def test_gold_calls_become_a_chain_reading_earlier_outputs() -> None:
    doc = nestful_answer([
        {"name": "find_flight", "label": "var1", "arguments": {"origin": "NYC", "adults": 2, "extra": "x"}},
        {"name": "book", "label": "var2", "arguments": {"flight_id": "$var1.id$", "seats": 2}},
        {"name": "var_result", "arguments": {"r": "$var2$"}},
    ], TOOLS)
    assert doc is not None
    first, second = _calls(doc)
    assert first.output_keys == ("var1",) and second.output_keys == ("var2",)
    # undeclared arguments are left out; a number gets the trailing space that keeps
    # it a string for the reference runtime; a reference reads the earlier output key
    assert dict(first.arguments) == {"origin": "NYC", "adults": "2 "}
    assert dict(second.arguments) == {"flight_id": "{{ var1 }}", "seats": "2 "}
    assert first.next == ("/dynamic/plan_1/book",) and doc.blocks[0].nodes[-1].type == "end"


@pytest.mark.parametrize("calls", [
    [{"name": "book", "label": "var1", "arguments": {"flight_id": "$var9.id$", "seats": "1"}}],  # unknown output
    [{"name": "book", "label": "var1", "arguments": {"seats": "1"}}],  # lacks a required argument
    [{"name": "hotel", "label": "var1", "arguments": {}}],  # not a granted API
])
def test_unusable_gold_is_left_out(calls: list[dict]) -> None:
    assert nestful_answer(calls, TOOLS) is None


def test_a_wrong_answer_stops_the_corpus() -> None:
    request = {"target_path": "/dynamic/plan_1", "prompt": "x", "tools": [TOOLS["book"]],
               "budget": {"max_nodes": 4, "max_tokens": 256}}
    doc = nestful_answer([{"name": "find_flight", "label": "var1", "arguments": {"origin": "A"}}], TOOLS)
    assert doc is not None
    chat = ChatTemplate("{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    with pytest.raises(ValueError, match="does not validate"):
        chat_example(request, dsl.dumps(doc), chat, "test")  # find_flight is not granted


def test_training_examples_are_written_by_the_serving_grammar() -> None:
    """Every NESTFUL example of the training splits, framed in SmolLM2's chat
    template, is a document the serving grammar accepts token by token."""
    loaded = load_model(smollm2_path())
    chat = ChatTemplate.from_loaded(loaded)
    assert chat is not None
    keep = GrammarFilter(loaded)
    records = [r for split in TRAIN_SPLITS for r in nestful_examples(split, chat, variants=1)]
    assert len(records) > 150  # of 215 samples
    assert all(r["prompt"].startswith(chat.stable_prefix) for r in records)
    accepted = sum(keep.accepts(r) for r in records)
    assert accepted >= 0.9 * len(records), keep.dropped
    with pytest.raises(ValueError):
        next(nestful_examples("executable", chat))  # test data is never a training split
