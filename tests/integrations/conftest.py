"""Shared fixtures: the shipped agentic-tiny vocabulary (3,072 tokens) and a compiler.

The small vocabulary keeps the draft-tree and SGLang contract tests fast; the
matcher's logic does not depend on the vocabulary's size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import agentic_llm
from agentic_llm.grammar import GrammarCompiler, TokenizerInfo

TINY = Path(agentic_llm.__file__).parent / "models" / "agentic-tiny"


@pytest.fixture(scope="session")
def tiny_info() -> TokenizerInfo:
    return TokenizerInfo.from_hf_tokenizer_json(TINY / "tokenizer.json")


@pytest.fixture(scope="session")
def tiny_compiler(tiny_info: TokenizerInfo) -> GrammarCompiler:
    return GrammarCompiler(tiny_info)
