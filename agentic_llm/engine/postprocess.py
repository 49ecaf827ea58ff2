"""What happens to a request after a token is chosen: constraint, stops, jump-forward."""

from __future__ import annotations

import time

from tokenizers import Tokenizer

from agentic_llm.engine.outputs import FinishReason
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.scheduler.request import Request

__all__ = ["accept_sampled", "refused_token_error", "stop_reason", "jump_forward"]


def refused_token_error(token: int) -> AgenticError:
    """The error of a request whose matcher refused a token its own mask allowed."""
    return AgenticError(
        ErrorCode.GRAMMAR, f"the constraint refused token {token} although its mask allowed it", token_id=token)


def accept_sampled(req: Request, token: int, live: bool | None = None) -> AgenticError | None:
    """Append a sampled token, advancing the request's matcher. An error if refused.

    ``live`` says whether the matcher is known not to be terminated (None: ask it).
    """
    m = req.matcher
    if m is not None and live is None:
        live = not m.is_terminated()
    if m is not None and live and not m.accept_token(token):
        return refused_token_error(token)
    req.token_ids.append(token)
    req.metrics.num_decode_steps += 1
    if req.metrics.first_token_time is None:
        req.metrics.first_token_time = time.monotonic()
    return None


def stop_reason(req: Request, eos_ids: frozenset[int], max_model_len: int) -> FinishReason | None:
    """Why ``req`` should stop after its last token, or None to go on."""
    last = req.token_ids[-1]
    if not req.params.ignore_eos and last in eos_ids:
        return FinishReason.STOP
    if last in req.params.stop_token_ids:
        return FinishReason.STOP
    # a matcher with a pending token is behind: the next fill finds out whether that
    # token completed the document
    if req.matcher is not None and req.pending_token is None and req.matcher.is_terminated():
        return FinishReason.STOP
    if req.num_output_tokens >= req.params.max_tokens or req.num_tokens >= max_model_len:
        return FinishReason.LENGTH
    return None


def jump_forward(req: Request, tokenizer: Tokenizer | None, max_model_len: int) -> int:
    """Append the tokens of the text the constraint forces next; return how many.

    The forced string is tokenized on its own and fed to the matcher token by token;
    only the tokens the matcher accepts are appended, so the sequence always stays
    inside the grammar even where this tokenization differs from what the model
    would have produced at the boundary. They are computed by the next forward as
    one multi-token chunk.
    """
    m = req.matcher
    if m is None or tokenizer is None or not req.params.jump_forward or m.is_terminated():
        return 0
    text = m.find_jump_forward_string()
    if not text:
        return 0
    added = 0
    for tok in tokenizer.encode(text, add_special_tokens=False).ids:
        if req.num_output_tokens >= req.params.max_tokens or req.num_tokens >= max_model_len:
            break
        if not m.accept_token(tok):
            break
        req.token_ids.append(tok)
        added += 1
        if m.is_terminated():
            break
    req.metrics.num_forced_tokens += added
    return added
