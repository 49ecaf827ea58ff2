"""Per-request helpers of the pipeline: incremental detokenizing and cancellation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["CancelToken", "TextDecoder"]


class TextDecoder:
    """Incremental detokenizer: text of all ids so far, minus what was sent."""

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self.ids: list[int] = []
        self.sent = 0

    def add(self, ids: Sequence[int]) -> str:
        self.ids.extend(ids)
        text = self._tok.decode(self.ids)
        # Hold back a partial UTF-8 sequence until its last byte arrives.
        stable = len(text) - 1 if text.endswith("\ufffd") else len(text)
        delta = text[self.sent:stable]
        self.sent = max(self.sent, stable)
        return delta

    def text(self) -> str:
        return self._tok.decode(self.ids)


class CancelToken:
    """Lets a front end stop a request from another thread (client disconnect)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cancelled = False
        self._abort: Callable[[], None] | None = None
        self._children: list[CancelToken] = []

    def child(self) -> CancelToken:
        """A token cancelled together with this one (one per fork branch)."""
        token = CancelToken()
        with self._lock:
            self._children.append(token)
            fire = self.cancelled
        if fire:
            token.cancel()
        return token

    def bind(self, abort: Callable[[], None]) -> None:
        with self._lock:
            self._abort = abort
            fire = self.cancelled
        if fire:
            abort()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            abort = self._abort
            children = list(self._children)
        if abort is not None:
            abort()
        for c in children:
            c.cancel()
