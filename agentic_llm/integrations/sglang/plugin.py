"""The ``sglang.srt.plugins`` entry point: registers the ``agentic-dsl`` grammar backend.

SGLang runs ``load_plugins()`` in ``Engine.__init__`` and in every scheduler
process, so tensor-parallel ranks and data-parallel workers all register it; the
server is then started with ``--grammar-backend agentic-dsl``.
"""

from __future__ import annotations

from typing import Any

from agentic_llm.integrations.sglang.key import BACKEND_NAME

__all__ = ["register", "create_backend"]


def create_backend(server_args: Any, tokenizer: Any, vocab_size: int,
                   eos_token_ids: Any = None) -> Any:
    """SGLang's backend factory signature: our backend over SGLang's xgrammar backend."""
    from sglang.srt.constrained.xgrammar_backend import XGrammarGrammarBackend

    from agentic_llm.grammar import GrammarCompiler
    from agentic_llm.integrations.sglang.backend import AgenticGrammarBackend, tokenizer_info_for

    inner = XGrammarGrammarBackend(tokenizer, vocab_size=vocab_size,
                                   model_eos_token_ids=list(eos_token_ids) if eos_token_ids else None)
    compiler = GrammarCompiler(tokenizer_info_for(tokenizer, vocab_size, eos_token_ids))
    return AgenticGrammarBackend(compiler, vocab_size, inner=inner)


def register() -> None:
    """Register ``agentic-dsl`` with SGLang's grammar backend registry and choices."""
    from sglang.srt.arg_groups.choices import GRAMMAR_BACKEND_CHOICES, add_grammar_backend_choices
    from sglang.srt.constrained.base_grammar_backend import register_grammar_backend

    register_grammar_backend(BACKEND_NAME, create_backend)
    if BACKEND_NAME not in GRAMMAR_BACKEND_CHOICES:
        add_grammar_backend_choices([BACKEND_NAME])
