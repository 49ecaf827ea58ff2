"""Reading a command's input file, where ``-`` means standard input (every command)."""

from __future__ import annotations

import sys
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["STDIN", "read_text", "read_bytes", "read_request"]

STDIN = "-"


def read_bytes(path: str, limit: int | None = None) -> bytes:
    """The bytes of ``path`` (``-``: standard input), at most ``limit`` of them.

    Raises:
        AgenticError: ERR_INVALID_REQUEST naming the file that cannot be read.
    """
    try:
        if path == STDIN:
            return sys.stdin.buffer.read(-1 if limit is None else limit)
        with open(path, "rb") as fh:
            return fh.read(-1 if limit is None else limit)
    except OSError as exc:
        raise AgenticError(ErrorCode.INVALID_REQUEST,
                           f"cannot read {path}: {exc.strerror or exc}") from None


def read_text(path: str) -> str:
    """The UTF-8 text of ``path`` (``-``: standard input)."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AgenticError(ErrorCode.INVALID_REQUEST, f"{path} is not UTF-8 text: {exc}") from None


def read_request(path: str) -> Any:
    """The ``planner.GenerateRequest`` in the JSON file ``path`` (``-``: standard input).

    Raises:
        AgenticError: ERR_INVALID_REQUEST for an unreadable file or a malformed request.
    """
    from agentic_llm.planner import GenerateRequest

    return GenerateRequest.from_json(read_text(path))
