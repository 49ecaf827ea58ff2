"""Hostile input: every case ends in Diagnostics or a clean DSLParseError, quickly.

The timeout marks are hang guards only (generous on a loaded CI machine); the tests
assert behaviour, not speed.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentic_llm.dsl import (
    Diagnostic,
    DSLParseError,
    ParseLimits,
    check_text,
    parse,
)
from agentic_llm.errors import ErrorCode
from tests.dsl.helpers import block

EXAMPLE = (Path(__file__).parents[2] / "examples" / "main_program.md").read_text()
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _codes(diags: list[Diagnostic]) -> set[ErrorCode]:
    assert all(isinstance(d, Diagnostic) for d in diags)
    return {d.code for d in diags}


@pytest.mark.timeout(120)
@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _codes(check_text(data))  # returns diagnostics, whatever the bytes


@pytest.mark.timeout(120)
@FUZZ
@given(st.text(max_size=300))
def test_random_text_inside_a_block(body: str) -> None:
    _codes(check_text(block("/main/x", body)))


@pytest.mark.timeout(60)
def test_random_bytes_fixed_seeds() -> None:
    rng = random.Random(1234)
    for size in (1, 10, 100, 1000, 10_000, 100_000):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert check_text(data), size  # random bytes are never a valid document
    data = b"### AgenticDSL `/main/x`\n```yaml\n" + bytes(rng.randrange(256) for _ in range(5000))
    assert check_text(data)


@pytest.mark.timeout(60)
def test_every_truncation_of_a_document() -> None:
    for cut in range(0, len(EXAMPLE), 7):
        _codes(check_text(EXAMPLE[:cut]))
    # cutting inside a block leaves an unclosed fence
    assert ErrorCode.SYNTAX in _codes(check_text(EXAMPLE[: len(EXAMPLE) // 2]))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("size", [10_000_000, 1_000_001])
def test_oversized_input(size: int) -> None:
    text = "# " + "x" * (size - 2)
    diags = check_text(text)
    assert [d.code for d in diags] == [ErrorCode.INPUT_TOO_LARGE]
    assert "limit" in diags[0].message
    assert _codes(check_text(text.encode())) == {ErrorCode.INPUT_TOO_LARGE}
    with pytest.raises(DSLParseError) as info:
        parse(text)
    assert info.value.code is ErrorCode.INPUT_TOO_LARGE


@pytest.mark.timeout(30)
def test_size_limit_is_configurable() -> None:
    text = block("/dynamic/x", "type: end")
    assert _codes(check_text(text, limits=ParseLimits(max_input_bytes=20))) == {
        ErrorCode.INPUT_TOO_LARGE
    }
    assert check_text(text, limits=ParseLimits(max_input_bytes=len(text))) == []
    with pytest.raises(ValueError):
        ParseLimits(max_input_bytes=0)
    with pytest.raises(ValueError):
        ParseLimits(max_depth=True)  # type: ignore[arg-type]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "body",
    [
        "a: " + "[" * 100_000,
        "a: " + "[" * 5_000 + "]" * 5_000,
        "a: " + "{b: " * 2_000 + "1" + "}" * 2_000,
        "".join(" " * (2 * i) + f"k{i}:\n" for i in range(500)) + " " * 1000 + "v",
        "".join(" " * (2 * i) + "-\n" for i in range(500)),
    ],
)
def test_deep_nesting(body: str) -> None:
    diags = check_text(block("/main/x", body))
    assert diags and diags[0].code in {ErrorCode.NESTING_TOO_DEEP, ErrorCode.YAML}
    if body.count("[") > 1000 and "]" in body:
        assert diags[0].code is ErrorCode.NESTING_TOO_DEEP
        assert diags[0].block == "/main/x" and diags[0].line is not None


@pytest.mark.timeout(30)
def test_nesting_limit_is_configurable() -> None:
    text = block("/dynamic/x", "type: end\nmetadata:\n  a:\n    b:\n      c: 1")
    assert check_text(text) == []
    assert _codes(check_text(text, limits=ParseLimits(max_depth=3))) == {ErrorCode.NESTING_TOO_DEEP}


@pytest.mark.timeout(30)
def test_billion_laughs() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    body = "type: end\nmetadata:\n" + "\n".join("  " + ln for ln in lines)
    diags = check_text(block("/main/x", body))
    assert [d.code for d in diags] == [ErrorCode.INPUT_TOO_LARGE]
    assert "aliases" in diags[0].message


@pytest.mark.timeout(30)
def test_many_aliases() -> None:
    body = "type: end\nmetadata:\n  a: &a 1\n  b: [" + ", ".join(["*a"] * 5000) + "]"
    assert _codes(check_text(block("/dynamic/x", body))) == {ErrorCode.INPUT_TOO_LARGE}
    small = "type: end\nmetadata:\n  a: &a 1\n  b: [*a, *a]"
    assert check_text(block("/dynamic/x", small)) == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "body",
    [
        "type: end\n---\ntype: end",
        "type: !!python/object:os.system end",
        "type: !custom end",
        "type: end\ntype: start",
        "type: end\n? [a, b]\n: c",
        "type: end\n\tbad: tab",
        "type: 'unterminated",
        "type: end\nx: \x00",
    ],
)
def test_bad_yaml(body: str) -> None:
    diags = check_text(block("/main/x", body))
    assert diags[0].code is ErrorCode.YAML and diags[0].line is not None


@pytest.mark.timeout(30)
def test_unusual_scalars_are_kept_as_text_or_numbers() -> None:
    body = "type: end\nmetadata:\n  when: 2024-01-01\n  big: 1e999\n  hex: 0x1F"
    doc = parse(block("/dynamic/x", body))
    assert doc.blocks[0].node.metadata == {  # type: ignore[union-attr]
        "when": "2024-01-01",
        "big": "1e999",
        "hex": 31,
    }


@pytest.mark.timeout(30)
def test_invalid_utf8() -> None:
    data = b"### AgenticDSL `/main/x`\n```yaml\ntype: \xff\xfe\n```\n"
    diags = check_text(data)
    assert [(d.code, d.line) for d in diags] == [(ErrorCode.SYNTAX, 3)]


@pytest.mark.timeout(60)
def test_many_blocks_and_block_cap() -> None:
    one = block("/dynamic/b{}", "type: end")
    text = "\n".join(one.format(i) for i in range(300))
    assert check_text(text) == []
    assert _codes(check_text(text, limits=ParseLimits(max_blocks=100))) == {
        ErrorCode.INPUT_TOO_LARGE
    }


@pytest.mark.timeout(30)
def test_pathological_templates_and_signatures() -> None:
    huge = "{{ " + "(" * 5000 + "a" + ")" * 5000 + " }}"
    body = f'type: assign\nassign:\n  "x": "{huge}"'
    _codes(check_text(block("/dynamic/x", body)))
    sig = "(" + ", ".join(f"a{i}: number" for i in range(2000)) + ")"
    diags = check_text(block("/dynamic/y", f'type: end\nsignature: "{sig}"'))
    assert [d.code for d in diags] == [ErrorCode.SIGNATURE_SYNTAX]
