"""template_variables(): the context roots an Inja template reads."""

from __future__ import annotations

import pytest

from agentic_llm.dsl import TemplateSyntaxError, template_variables


@pytest.mark.parametrize(
    ("text", "reads"),
    [
        ("plain text, no tags", set()),
        ("Hello, {{ user.name }}!", {"user"}),
        ("{{ length(items) }}", {"items"}),
        ("{{ len($.roots) == 1 }}", {"roots"}),
        ("{{ $.ctx_snapshots['/main/step3'] }}", {"ctx_snapshots"}),
        ("{{ $ }}", {"$"}),
        ("{{ a.b[c].d[0] }}", {"a", "c"}),
        ("{{ items.0.name }}", {"items"}),
        ('{{ x if cond else y["k"] }}', {"x", "cond", "y"}),
        ("{{ a and not b or c in d }}", {"a", "b", "c", "d"}),
        ("{{ a not in b }}", {"a", "b"}),
        ("{{ x is defined }} {{ y is not none }}", {"x", "y"}),
        ("{{ -n + 2 * m ^ 2 // 3 % 4 - 1.5e3 }}", {"n", "m"}),
        ("{{ n ** 2 }} {{ 3 / k }}", {"n", "k"}),
        ('{{ lib.inputs | map(attribute="name") | join(", ") }}', {"lib"}),
        ("{{ name | upper }}", {"name"}),
        ('{{ {"a": b, "c": [1, d, true, null, "s"]} }}', {"b", "d"}),
        ('{{ \'single\' }} {{ "double \\" quote" }}', set()),
        ("{{ range(5) }} {{ default(v, 'x') }}", {"v"}),
        ("{% for x in results %}{{ x.title }} {{ loop.index }}{% endfor %}", {"results"}),
        ("{% for k, v in pairs %}{{ k }}={{ v }}{% endfor %}", {"pairs"}),
        (
            "{% if a > 1 %}{{ b }}{% else if c %}x{% elif d %}{% else %}{{ e }}{% endif %}",
            {"a", "b", "c", "d", "e"},
        ),
        ("{% set total = price * qty %}{{ total }}", {"price", "qty"}),
        ("{# a comment {{ ignored }} #}{{ shown }}", {"shown"}),
        ("{{- trimmed -}}", {"trimmed"}),
        ("{{ true }} {{ False }} {{ None }}", set()),
    ],
)
def test_reads(text: str, reads: set[str]) -> None:
    assert template_variables(text) == reads


@pytest.mark.parametrize(
    "text",
    [
        "{{ unclosed",
        "{% if x",
        "{# never closed",
        "{{ }}",
        "{{ a + }}",
        "{{ (a }}",
        "{{ a.}}",
        "{{ 'unterminated }}",
        "{% include 'x.md' %}",
        "{% extends 'base' %}",
        "{% while x %}",
        "{{ a b }}",
        "x" * 100_001,
    ],
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        template_variables(text)
    assert info.value.code.value == "ERR_TEMPLATE_SYNTAX"
