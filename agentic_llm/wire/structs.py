"""protobuf ``Struct`` values as plain Python, shared by the SDK and the servicer."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

__all__ = ["struct_to_dict"]


def _plain(value: Any) -> Any:
    """Struct numbers are doubles: give integral ones back their int type."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def struct_to_dict(struct: Any) -> dict[str, Any]:
    """A protobuf ``Struct`` as a plain dict, integral numbers as ints (used by the
    client for AST fields and by the server for request context values)."""
    return _plain(json_format.MessageToDict(struct)) if struct.fields else {}  # type: ignore[no-any-return]
