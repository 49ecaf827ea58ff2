"""The seams of the pipeline: what it needs from an engine, a tokenizer and a compiler.

``agentic_llm.engine.LLMEngine``, ``tokenizers.Tokenizer`` and
``agentic_llm.grammar.GrammarCompiler`` satisfy them; a test or another backend can
provide its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from agentic_llm.engine.loop import LoopEngine

__all__ = ["Encoding", "PipelineCompiler", "PipelineEngine", "PipelineTokenizer"]


class Encoding(Protocol):
    @property
    def ids(self) -> list[int]: ...


@runtime_checkable
class PipelineTokenizer(Protocol):
    """Text to token ids and back."""

    def encode(self, text: str) -> Encoding: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class PipelineEngine(LoopEngine, Protocol):
    """What the engine loop steps, plus the tokenizer it ships (None when it has none)."""

    @property
    def tokenizer(self) -> Any: ...


@runtime_checkable
class PipelineCompiler(Protocol):
    """Plans to grammar matchers; ``compile_seconds`` records each compile (metrics)."""

    compile_seconds: Mapping[str, float]

    def matcher_for(self, plan: Any, *, max_tokens: int | None = None) -> Any: ...
