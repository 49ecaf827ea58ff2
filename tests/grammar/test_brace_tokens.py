"""The brace tokens a free string allows, per set of template variables.

``VocabIndex.brace_ok_bits`` decides the brace tokens of the 151k Qwen vocabulary by
their shape (``vocab.brace_shape``), one verdict per shape; it must equal
``graph.vars_ok`` applied to every brace token.
"""

from __future__ import annotations

import numpy as np
import pytest

from agentic_llm.grammar import GrammarCompiler
from agentic_llm.grammar.graph import vars_ok
from agentic_llm.grammar.vocab import VocabIndex, brace_shape


@pytest.mark.parametrize("variables", [
    frozenset(), frozenset({"city"}), frozenset({"city", "budget", "results"}),
    frozenset({"a", "b", "x"}), frozenset({"", "x y", "{a", "}"}), frozenset({"i", "item", "it"}),
])
def test_brace_ok_bits_equal_the_template_check(compiler: GrammarCompiler,
                                                variables: frozenset[str]) -> None:
    v = compiler.vocab
    want = [i for i in v.brace_ids if vars_ok(variables, v.texts[i], False)]
    got = VocabIndex.ids_in(v.brace_ok_bits(variables)).tolist()
    assert got == want
    assert np.array_equal(v.brace_drop_bits(variables), ~(v.brace_bits & ~v.brace_ok_bits(variables)))


def test_brace_shape() -> None:
    assert brace_shape("{{ city }}") == (("city",), None)
    assert brace_shape("x {{ a }} {{ b") == (("a",), "{{ b")
    assert brace_shape("{") == ((), "{") and brace_shape("{{") == ((), "{{")
    assert brace_shape('{"') is None and brace_shape("{{a }}") is None
    assert brace_shape("{{ a }}{x") is None
