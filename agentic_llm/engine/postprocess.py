"""What happens to a request after a token is chosen: constraint, stops, jump-forward."""

from __future__ import annotations

import time

from tokenizers import Tokenizer

from agentic_llm.engine.constraint_state import refused_token_error
from agentic_llm.engine.outputs import FinishReason
from agentic_llm.errors import AgenticError
from agentic_llm.scheduler.request import Request

__all__ = ["accept_sampled", "refused_token_error", "stop_reason", "jump_forward"]


def accept_sampled(req: Request, token: int, *, live: bool | None = None, park: bool = False) -> AgenticError | None:
    """Append a sampled token, advancing the request's constraint. An error if refused.

    ``live`` says whether the constraint is known not to be terminated (None: ask
    it; a terminated one takes nothing). With ``park`` the token is left for the
    next mask fill to take (``ConstraintState.park``).
    """
    c = req.constraint
    if c is not None:
        if park:
            c.park(token)
        elif (live or (live is None and not c.is_terminated())) and not c.accept(token):
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
    # with a parked token the constraint is behind: the next fill finds out whether
    # that token completed the document
    if req.constraint is not None and req.constraint.is_terminated():
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
    c = req.constraint
    if c is None or tokenizer is None or not req.params.jump_forward:
        return 0
    text = c.jump_forward_string()
    if not text:
        return 0
    added = 0
    for tok in tokenizer.encode(text, add_special_tokens=False).ids:
        if req.num_output_tokens >= req.params.max_tokens or req.num_tokens >= max_model_len:
            break
        if not c.accept(tok):
            break
        req.token_ids.append(tok)
        added += 1
        if c.is_terminated():
            break
    req.metrics.num_forced_tokens += added
    return added
