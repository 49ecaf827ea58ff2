"""Shared fixtures: the 151k Qwen vocabulary and one compiler for the whole session."""

from __future__ import annotations

import pytest

from agentic_llm.grammar import GrammarCompiler, TokenizerInfo


@pytest.fixture(scope="session")
def qwen() -> TokenizerInfo:
    return TokenizerInfo.from_qwen()


@pytest.fixture(scope="session")
def compiler(qwen: TokenizerInfo) -> GrammarCompiler:
    return GrammarCompiler(qwen)
