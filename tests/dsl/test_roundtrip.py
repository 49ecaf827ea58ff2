"""The two round-trip laws of the canonical form, on generated ASTs, and the
canonical spelling of scalars."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings

from agentic_llm.dsl import (
    Assign,
    Document,
    Meta,
    NodeBlock,
    Resources,
    ValidationPolicy,
    dumps,
    has_errors,
    parse,
    validate,
)
from agentic_llm.dsl.emit import key_text, quote, scalar
from tests.dsl.strategies import (
    documents,
    generation_documents,
    meta_blocks,
    node_blocks,
    resources_blocks,
    subgraph_blocks,
)

LAWS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The per-block tests repeat what documents() covers, aimed at one block kind.
BLOCK_LAWS = settings(LAWS, max_examples=50)


def _bodies(text: str) -> list[object]:
    parts = text.split("# --- BEGIN AgenticDSL ---\n")[1:]
    return [yaml.safe_load(p.split("# --- END AgenticDSL ---")[0]) for p in parts]


def check_laws(doc: Document) -> str:
    text = dumps(doc)
    back = parse(text)
    assert back == doc  # parse(dumps(d)) == d
    assert dumps(back) == text  # dumps(parse(t)) == t for canonical t
    for body in _bodies(text):
        assert body is None or isinstance(body, dict)
    return text


@LAWS
@given(documents())
def test_laws_on_documents(doc: Document) -> None:
    check_laws(doc)


@BLOCK_LAWS
@given(subgraph_blocks("/dynamic/plan_1"))
def test_laws_on_subgraphs(block: object) -> None:
    check_laws(Document((block,)))  # type: ignore[arg-type]


@BLOCK_LAWS
@given(node_blocks("/main/step"))
def test_laws_on_node_blocks(block: object) -> None:
    check_laws(Document((block,)))  # type: ignore[arg-type]


@BLOCK_LAWS
@given(meta_blocks, resources_blocks)
# a key or bare word ending in a newline: "$" in a regex also matches before it, so
# the writer once left such a key bare and the text did not parse back
@example(Meta(path="/__meta__"), Resources(resources=({"type": "tool", "_\n": None},)))
@example(Meta(path="/__meta__"), Resources(resources=({"type": "_\n"},)))
def test_laws_on_meta_and_resources(meta: object, resources: object) -> None:
    check_laws(Document((meta, resources)))  # type: ignore[arg-type]


SCHEMAS = {"web_search": (("query",), ("limit", "lang")), "rank": (("items",), ())}


@LAWS
@given(
    generation_documents(
        "/dynamic/plan_7", tool_schemas=SCHEMAS, max_nodes=6, external_paths=("/lib/math/add",)
    )
)
def test_generation_profile_documents_are_valid_canonical_text(doc: Document) -> None:
    text = check_laws(doc)
    policy = ValidationPolicy(
        tool_schemas=SCHEMAS,
        external_paths={"/lib/math/add"},
        max_nodes=6,
        available_vars={"city", "budget", "x"},
        writable_prefixes=("/dynamic/",),
    )
    diags = validate(doc, policy)
    assert not has_errors(diags), (text, diags)
    assert text.count("### AgenticDSL `/dynamic/plan_7`") == 1
    assert '  - id: "start"\n    type: start\n' in text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", '"plain"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
        ("a\nb\tc\rd", '"a\\nb\\tc\\rd"'),
        (
            "\x00\x1b\x7f\x85\u2028\u2029\ufeff\ufffe\uffff",
            '"\\u0000\\u001b\\u007f\\u0085\\u2028\\u2029\\ufeff\\ufffe\\uffff"',
        ),
        ("\ud800", '"\\ud800"'),
        ("héllo 漢字 🙂", '"héllo 漢字 🙂"'),
        ("yes", '"yes"'),
    ],
)
def test_string_escapes(value: str, text: str) -> None:
    assert quote(value) == text
    assert "\n" not in quote(value)
    if "\ud800" not in value:
        assert yaml.safe_load(text) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-12, "-12"),
        (10**30, str(10**30)),
        (1.5, "1.5"),
        (1e20, "1.0e+20"),
        (-2.5e-7, "-2.5e-07"),
        (1e16, "1.0e+16"),
        (-0.0, "-0.0"),
        (math.inf, ".inf"),
        (-math.inf, "-.inf"),
    ],
)
def test_scalar_spelling(value: object, text: str) -> None:
    assert scalar(value) == text
    assert yaml.safe_load(f"v: {text}")["v"] == value


def test_nan_and_bad_scalars() -> None:
    assert scalar(math.nan) == ".nan"
    assert math.isnan(yaml.safe_load("v: .nan")["v"])
    with pytest.raises(TypeError):
        scalar(object())


def test_keys() -> None:
    assert key_text("max_depth", bare=True) == "max_depth"
    for word in ("on", "yes", "null", "Name", "a-b", "", "1x"):
        assert key_text(word, bare=True) == quote(word)
    assert key_text("query", bare=False) == '"query"'


def test_user_keys_that_yaml_would_misread_survive() -> None:
    doc = Document(
        (NodeBlock(path="/main/a", node=Assign(assign={"on": "1", "no": "off", "null": ""})),)
    )
    text = dumps(doc)
    assert '"on": "1"' in text
    assert parse(text) == doc
