"""Low-level writers for the canonical form: quoted strings, scalars, flow lists and
block mappings (docs/canonical-form.md, rules 2-7)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["quote", "scalar", "flow_list", "emit_value", "emit_mapping", "is_scalar", "key_text"]

_SIMPLE_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
# Characters written as \uXXXX: C0 controls, DEL and C1, line/paragraph separators,
# BOM, the non-characters U+FFFE/U+FFFF, and lone surrogates.
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]')


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    simple = _SIMPLE_ESCAPES.get(ch)
    return simple if simple is not None else f"\\u{ord(ch):04x}"


def quote(text: str) -> str:
    """A YAML double-quoted scalar on one line."""
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | int | float)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    # YAML 1.1 (PyYAML) reads an exponent without a dot as a string: 1e+20 -> 1.0e+20
    if "." not in text:
        mantissa, _, exponent = text.partition("e")
        text = f"{mantissa}.0e{exponent}" if exponent else f"{mantissa}.0"
    return text


def scalar(value: Any) -> str:
    """One scalar in canonical spelling."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return quote(value)
    raise TypeError(f"cannot write {type(value).__name__} as a scalar")


def flow_list(values: Any) -> str:
    """``["a", "b"]``: a list of scalars on one line."""
    return "[" + ", ".join(scalar(v) for v in values) + "]"


_BARE_KEY = re.compile(r"^[a-z_][a-z0-9_]*\Z")  # \Z: "$" would also match before a final newline
# Plain words YAML 1.1 reads as booleans or null: never written bare.
_YAML11_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def key_text(key: str, bare: bool) -> str:
    """A mapping key: bare when ``bare`` and the key is a safe identifier, else quoted."""
    if bare and _BARE_KEY.match(key) and key not in _YAML11_WORDS:
        return key
    return quote(key)


def emit_value(out: list[str], prefix: str, value: Any, indent: int, bare_keys: bool) -> None:
    """Write ``value`` after ``prefix`` (e.g. ``'  "k":'``); nested content goes on
    following lines at ``indent`` spaces."""
    if is_scalar(value):
        out.append(f"{prefix} {scalar(value)}")
    elif isinstance(value, list | tuple):
        if all(is_scalar(v) for v in value):
            out.append(f"{prefix} {flow_list(value)}")
        else:
            out.append(prefix)
            emit_list_items(out, value, indent, bare_keys)
    elif isinstance(value, Mapping):
        if not value:
            out.append(f"{prefix} {{}}")
        else:
            out.append(prefix)
            emit_mapping(out, value, indent, bare_keys)
    else:
        raise TypeError(f"cannot write {type(value).__name__} in a document")


def emit_mapping(out: list[str], mapping: Mapping[str, Any], indent: int, bare_keys: bool) -> None:
    """Block mapping entries at ``indent`` spaces."""
    pad = " " * indent
    for key, value in mapping.items():
        emit_value(out, f"{pad}{key_text(str(key), bare_keys)}:", value, indent + 2, bare_keys)


def emit_list_items(out: list[str], items: Any, indent: int, bare_keys: bool) -> None:
    """Block list items (``- ...``) at ``indent`` spaces."""
    pad = " " * indent
    for item in items:
        if isinstance(item, Mapping) and item:
            start = len(out)
            emit_mapping(out, item, indent + 2, bare_keys)
            out[start] = f"{pad}- " + out[start][indent + 2 :]
        elif isinstance(item, list | tuple) and item and not all(is_scalar(v) for v in item):
            out.append(f"{pad}-")
            emit_list_items(out, item, indent + 2, bare_keys)
        else:
            emit_value(out, f"{pad}-", item, indent + 2, bare_keys)
