"""``AgenticGrammarBackend``: SGLang grammar backend for ``agentic-dsl`` keys.

An ``ebnf`` key that starts with ``#agentic-dsl/v1`` is planned here (refusals
become SGLang's invalid-grammar path, ``InvalidGrammarObject``, whose message
carries our ERR_* code) and compiled to a ``DSLGrammar``. Every other key (JSON
schema, regex, plain EBNF, structural tags) goes to the inner backend, SGLang's
xgrammar backend, so mixed batches work. Compiling runs on the backend's executor
threads; ``GrammarCompiler`` serialises xgrammar compiles with a lock and the rest
of a plan's compile is per-request data, so it is thread-safe.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from typing import Any

from sglang.srt.constrained.base_grammar_backend import (
    BaseGrammarBackend,
    BaseGrammarObject,
    GrammarStats,
    InvalidGrammarObject,
)

from agentic_llm.errors import AgenticError
from agentic_llm.grammar import GrammarCompiler, TokenizerInfo
from agentic_llm.integrations.sglang.grammar import DSLGrammar
from agentic_llm.integrations.sglang.key import KEY_PREFIX, parse_key, request_digest
from agentic_llm.planner import GenerateRequest, plan

__all__ = ["AgenticGrammarBackend", "tokenizer_info_for"]

_MAX_HANDLES = 4096


def tokenizer_info_for(tokenizer: Any, vocab_size: int,
                       eos_token_ids: Any = None) -> TokenizerInfo:
    """Our vocabulary for SGLang's tokenizer (a Hugging Face fast tokenizer), sized to
    the model's ``vocab_size`` (the mask width) with SGLang's end-of-sequence ids."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    info = TokenizerInfo.from_tokenizer(backend, vocab_size=vocab_size, name="sglang")
    if eos_token_ids:
        info = dataclasses.replace(info, stop_token_ids=tuple(sorted(int(t) for t in eos_token_ids)))
    return info


class AgenticGrammarBackend(BaseGrammarBackend):  # type: ignore[misc]
    """Plans and compiles ``agentic-dsl`` keys; delegates the rest to ``inner``.

    Args:
        compiler: the grammar compiler for the model's vocabulary.
        vocab_size: the model's vocabulary size.
        inner: the backend for other constraint kinds (SGLang's xgrammar backend);
            None refuses them.
        precompile: compile the standard node-type whitelists now, so a request's
            grammar is a cache hit.
    """

    def __init__(self, compiler: GrammarCompiler, vocab_size: int, *,
                 inner: BaseGrammarBackend | None = None, precompile: bool = True) -> None:
        super().__init__()
        self.compiler = compiler
        self.vocab_size = vocab_size
        self.inner = inner
        self._handles: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        if precompile:
            compiler.precompile_standard()

    # -- agentic-dsl ---------------------------------------------------------------

    def plan_handle(self, request_json: str) -> str:
        """Remember ``request_json`` under its digest; returns the digest, which a
        ``handle_key`` names. Handles are valid in this process only."""
        digest = request_digest(request_json)
        with self._lock:
            self._handles[digest] = request_json
            self._handles.move_to_end(digest)
            while len(self._handles) > _MAX_HANDLES:
                self._handles.popitem(last=False)
        return digest

    def _dispatch_dsl(self, key_string: str) -> BaseGrammarObject:
        try:
            key = parse_key(key_string)
            assert key is not None  # only called for our prefix
            request_json = key.request_json
            if key.handle:
                with self._lock:
                    request_json = self._handles.get(key.handle, "")
                if not request_json:
                    return InvalidGrammarObject(
                        f"ERR_INVALID_REQUEST: unknown plan handle {key.handle[:16]}...: "
                        "send the request JSON (handles are valid in the process that planned them)")
            else:
                self.plan_handle(request_json)
            p = plan(GenerateRequest.from_json(request_json))
            matcher = self.compiler.matcher_for(p)
        except AgenticError as exc:  # a PlanRefusal is one: its message starts with the code
            return InvalidGrammarObject(str(exc))
        return DSLGrammar(matcher, self.vocab_size, key=key_string,
                          grammar_stats=GrammarStats(dispatch_type="agentic-dsl"))

    # -- SGLang's dispatch ---------------------------------------------------------

    def dispatch_ebnf(self, key_string: str) -> BaseGrammarObject:
        if key_string.startswith(KEY_PREFIX):
            return self._dispatch_dsl(key_string)
        return self._delegate("ebnf", key_string)

    def dispatch_json(self, key_string: str) -> BaseGrammarObject:
        return self._delegate("json", key_string)

    def dispatch_regex(self, key_string: str) -> BaseGrammarObject:
        return self._delegate("regex", key_string)

    def dispatch_structural_tag(self, key_string: str) -> BaseGrammarObject:
        return self._delegate("structural_tag", key_string)

    def _delegate(self, kind: str, key_string: str) -> BaseGrammarObject:
        if self.inner is None:
            return InvalidGrammarObject(
                f"ERR_UNSUPPORTED_CAPABILITY: {kind} constraints need an inner grammar backend")
        return getattr(self.inner, f"dispatch_{kind}")(key_string)

    @property
    def is_support_token_filter(self) -> bool:
        return bool(self.inner is not None and self.inner.is_support_token_filter)

    def set_token_filter(self, vocab_mask: Any, token_ids: Any, batch_idx: int,
                         is_allowed: bool = True, reset_vocab_mask: bool = True) -> None:
        if self.inner is not None:
            self.inner.set_token_filter(vocab_mask, token_ids, batch_idx,
                                        is_allowed=is_allowed, reset_vocab_mask=reset_vocab_mask)

    def reset(self) -> None:
        super().reset()
        if self.inner is not None:
            self.inner.reset()
