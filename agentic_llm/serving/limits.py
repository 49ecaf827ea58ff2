"""What must fit before a request reaches the engine.

The prompt must fit the model's context (refused first by characters, so a huge
prompt is never tokenized), the smallest document the grammar allows must fit the
tokens left for the output, and the sampling parameters carry both limits (the
output tokens and the time left before the deadline) to the engine.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import GenerateRequest

__all__ = ["FALLBACK_PROMPT_CHARS", "max_prompt_chars", "encode_prompt", "check_room",
           "sampling_params"]

_log = logging.getLogger(__name__)

#: Characters allowed in a prompt when the model's context length is unknown.
FALLBACK_PROMPT_CHARS = 256 * 1024


def max_prompt_chars(tokenizer: Any, max_model_len: int) -> int:
    """Prompt characters that could possibly fit ``max_model_len`` tokens: the context
    times the longest token's text."""
    if max_model_len <= 0:
        return FALLBACK_PROMPT_CHARS
    try:
        longest = max((len(t) for t in tokenizer.get_vocab()), default=16)
    except Exception:  # noqa: BLE001 - a tokenizer without a vocab listing
        longest = 16
    return max_model_len * max(1, longest)


def encode_prompt(tokenizer: Any, text: str, limit: int) -> list[int]:
    """Tokenize a rendered prompt of at most ``limit`` characters.

    Raises:
        AgenticError: ERR_CONTEXT_TOO_LONG past ``limit``; ERR_INVALID_REQUEST when
            the tokenizer panics on the text (a BaseException).
    """
    if len(text) > limit:
        raise AgenticError(
            ErrorCode.CONTEXT_TOO_LONG,
            f"the prompt is {len(text)} characters; at most {limit} can fit the model's "
            "context; shorten the prompt, tools or library",
            prompt_chars=len(text), max_prompt_chars=limit)
    try:
        return list(tokenizer.encode(text).ids)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - tokenizers panics are BaseExceptions
        _log.warning("the tokenizer refused a prompt of %d characters: %s", len(text),
                     type(exc).__name__)
        raise AgenticError(ErrorCode.INVALID_REQUEST,
                           f"the tokenizer could not read the prompt ({type(exc).__name__})",
                           field="prompt") from None


def check_room(p: Any, matcher: Any, limit: int, prompt_tokens: int, max_len: int | None) -> None:
    """Refuse before generation when not even the smallest document fits ``limit``.

    Raises:
        AgenticError: ERR_CONTEXT_TOO_LONG when the prompt took the room,
            ERR_BUDGET_EXCEEDED when ``max_tokens`` is too small.
    """
    need = matcher.min_tokens() if matcher is not None else 1
    if limit >= need:
        return
    if max_len and limit < p.max_tokens:
        raise AgenticError(
            ErrorCode.CONTEXT_TOO_LONG,
            f"prompt of {prompt_tokens} tokens leaves {max(limit, 0)} of the model's "
            f"{max_len}-token context; the smallest subgraph takes {need}; shorten the "
            "prompt, tools or library", prompt_tokens=prompt_tokens, max_model_len=max_len,
            min_tokens=need)
    raise AgenticError(
        ErrorCode.BUDGET_EXCEEDED,
        f"no valid subgraph fits the budget: max_tokens is {limit} but the smallest valid "
        f"subgraph takes {need} tokens", max_tokens=limit, min_tokens=need)


def sampling_params(req: GenerateRequest, max_tokens: int, deadline: float,
                    jump_forward: bool = True) -> Any:
    """The engine's ``SamplingParams`` for ``req``: its sampling settings, at most
    ``max_tokens`` output tokens and the time left before ``deadline``."""
    from agentic_llm.engine import SamplingParams

    s = req.sampling
    return SamplingParams(
        max_tokens=max_tokens, temperature=s.temperature, top_k=s.top_k,
        top_p=s.top_p if s.top_p > 0 else 1.0, seed=s.seed, jump_forward=jump_forward,
        timeout_s=max(0.001, deadline - time.monotonic()),
    )
