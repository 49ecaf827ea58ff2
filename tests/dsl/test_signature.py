"""Both signature forms read into one Signature; the string form is canonical."""

from __future__ import annotations

import pytest

from agentic_llm.dsl import (
    Param,
    Signature,
    SignatureSyntaxError,
    Subgraph,
    dumps,
    parse,
    parse_signature,
    signature_from_mapping,
)
from tests.dsl.helpers import block


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        (
            "(a: number, b: number) -> sum: number",
            Signature(
                inputs=(Param("a", "number"), Param("b", "number")),
                outputs=(Param("sum", "number"),),
            ),
            "(a: number, b: number) -> sum: number",
        ),
        (
            "(query: string) -> results",
            Signature((Param("query", "string"),), (Param("results"),)),
            "(query: string) -> results",
        ),
        ("()", Signature(), "()"),
        ("( )  ->  ( )", Signature(), "()"),
        (
            "(input: string) -> {result: number}",
            Signature((Param("input", "string"),), (Param("result", "number"),)),
            "(input: string) -> result: number",
        ),
        (
            "(a?: array[ string | null ], b) -> (x: number, y)",
            Signature(
                (Param("a", "array[string|null]", False), Param("b")),
                (Param("x", "number"), Param("y")),
            ),
            "(a?: array[string|null], b) -> (x: number, y)",
        ),
        (
            "(e: string) -> r: array; version=1.0; stability=experimental",
            Signature((Param("e", "string"),), (Param("r", "array"),), "1.0", "experimental"),
            "(e: string) -> r: array; version=1.0; stability=experimental",
        ),
        (
            "(m: map[string, number])",
            Signature((Param("m", "map[string,number]"),)),
            "(m: map[string,number])",
        ),
    ],
)
def test_string_form(text: str, expected: Signature, canonical: str) -> None:
    sig = parse_signature(text)
    assert sig == expected
    assert sig.to_string() == canonical
    assert parse_signature(canonical) == sig


@pytest.mark.parametrize(
    "text",
    [
        "",
        "(a",
        "a: number",
        "(a: number) ->",
        "(a: number) -> x; colour=red",
        "(a) -> x; version=1; version=2",
        "(a) -> x; stability=rock",
        "(1a)",
        "(a: )",
        5,
    ],
)
def test_string_form_errors(text: object) -> None:
    with pytest.raises(SignatureSyntaxError) as info:
        parse_signature(text)  # type: ignore[arg-type]
    assert info.value.code.value == "ERR_SIGNATURE_SYNTAX"


def test_structured_form() -> None:
    value = {
        "inputs": [
            {"name": "expr", "type": "string", "required": True},
            {"name": "hint", "type": "string", "required": False},
        ],
        "outputs": [
            {
                "name": "roots",
                "type": "array",
                "schema": {"type": "array", "items": {"type": "number"}},
            },
            {"name": "n", "schema": {"type": "integer"}},
        ],
        "version": 1.0,
        "stability": "stable",
    }
    sig = signature_from_mapping(value)
    assert sig == Signature(
        inputs=(Param("expr", "string"), Param("hint", "string", False)),
        outputs=(Param("roots", "array"), Param("n", "integer")),
        version="1.0",
        stability="stable",
    )
    assert sig.to_string() == (
        "(expr: string, hint?: string) -> (roots: array, n: integer); version=1.0; stability=stable"
    )


@pytest.mark.parametrize(
    "value",
    [
        {"inputs": "a"},
        {"inputs": [{"type": "string"}]},
        {"inputs": [{"name": "1x"}]},
        {"inputs": [{"name": "a", "type": 5}]},
        {"inputs": [{"name": "a", "type": "no spaces allowed"}]},
        {"inputs": [{"name": "a", "required": "yes"}]},
        {"inputs": ["a"]},
        {"version": "1 0"},
        {"stability": "rock"},
        {"colour": "red"},
    ],
)
def test_structured_form_errors(value: dict[str, object]) -> None:
    with pytest.raises(SignatureSyntaxError):
        signature_from_mapping(value)


def test_both_forms_in_a_document_dump_as_string() -> None:
    structured = block(
        "/lib/m/solve",
        "graph_type: subgraph\nsignature:\n  inputs:\n    - name: expr\n      type: string\n"
        '  outputs:\n    - name: roots\n      type: array\n  version: "1.0"\n'
        'nodes:\n  - id: a\n    type: assign\n    assign:\n      roots: "[]"\n',
    )
    string_form = structured.replace(
        "signature:\n  inputs:\n    - name: expr\n      type: string\n"
        '  outputs:\n    - name: roots\n      type: array\n  version: "1.0"\n',
        'signature: "(expr: string) -> roots: array; version=1.0"\n',
    )
    a, b = parse(structured), parse(string_form)
    assert a == b
    sub = a.blocks[0]
    assert isinstance(sub, Subgraph) and sub.signature is not None
    assert sub.signature.input_names == ("expr",) and sub.signature.output_names == ("roots",)
    assert 'signature: "(expr: string) -> roots: array; version=1.0"' in dumps(a)
