"""How the reference AgenticDSL runtime reads a YAML scalar.

The reference runtime (chisuhua/AgenticDSL, ``src/common/utils/yaml_json.cpp``,
``yaml_to_json``) converts every YAML scalar to JSON from its text alone, without
looking at how it was quoted:

- ``true`` / ``false`` become booleans;
- ``~`` and the empty string become null;
- text that a C++ ``std::istringstream >> double`` consumes whole becomes a number:
  an integer when it is only an optional sign and digits (and fits a ``long long``),
  else a double; leading whitespace is skipped by the stream, trailing text is not
  consumed (so ``" 12"`` is a number and ``"12 "`` is not); ``inf``, ``nan`` and
  hexadecimal text are not numbers; a value out of range stays a string;
- anything else stays a string.

So ``"2"``, ``"true"`` and ``""`` written quoted in YAML reach the runtime as a
number, a boolean and null. :func:`reads_as_string` says whether a string value
survives as a string; generation uses it to avoid such values.
"""

from __future__ import annotations

import re

# std::num_get for double accepts: optional sign, digits with at most one point
# (at least one digit overall), then an optional exponent with optional sign and at
# least one digit. No inf/nan, no hex. The stream skips leading whitespace first.
# ASCII digits only: std::isdigit and the C locale know no other digits.
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_LEADING_WS = " \t\n\v\f\r"
_LLONG_MIN, _LLONG_MAX = -(2**63), 2**63 - 1


def reference_scalar(text: str) -> None | bool | int | float | str:
    """The JSON value the reference runtime makes of a YAML scalar's text.

    ``text`` is the scalar after YAML unquoting (what yaml-cpp's ``Scalar()`` gives).
    """
    if text == "true":
        return True
    if text == "false":
        return False
    if text in ("~", ""):
        return None
    body = text.lstrip(_LEADING_WS)
    if not _DOUBLE.fullmatch(body):
        return text
    if _INTEGER.fullmatch(text):
        value = int(text)
        return value if _LLONG_MIN <= value <= _LLONG_MAX else text
    number = float(body)
    if number in (float("inf"), float("-inf")):
        return text  # the stream sets failbit on overflow; the value stays a string
    return number


def reads_as_string(text: str) -> bool:
    """Whether a string value reaches the reference runtime as a string."""
    return isinstance(reference_scalar(text), str)
