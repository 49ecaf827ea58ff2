"""The reference runtime's reading of YAML scalars, which ignores quoting."""

import pytest

from agentic_llm.dsl.conformance import reads_as_string, reference_scalar


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("", None),
        ("~", None),
        ("true", True),
        ("false", False),
        ("2", 2),
        ("+5", 5),
        ("-7", -7),
        ("1e5", 100000.0),
        (".5", 0.5),
        ("1.", 1.0),
        (" 12", 12.0),  # the stream skips leading whitespace; not an integer by digits
    ],
)
def test_values_the_runtime_does_not_keep_as_strings(text: str, value: object) -> None:
    got = reference_scalar(text)
    assert got == value and type(got) is type(value)
    assert not reads_as_string(text)


@pytest.mark.parametrize(
    "text",
    ["abc", "True", "null", "nan", "inf", "0x1A", "12 ", "-", "1e", "99999999999999999999", "1e999",
     "\u0661\u0662", "\u00a012", "1_000"],  # non-ASCII digits and spaces are not numbers to it
)
def test_values_that_stay_strings(text: str) -> None:
    assert reference_scalar(text) == text
    assert reads_as_string(text)
