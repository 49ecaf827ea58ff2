"""What happens to a request after a token is chosen: constraint, stops, jump-forward."""

from __future__ import annotations

import time

from tokenizers import Tokenizer

from agentic_llm.engine.constraint_state import refused_token_error
from agentic_llm.engine.outputs import FinishReason
from agentic_llm.errors import AgenticError
from agentic_llm.scheduler.request import Request

__all__ = ["accept_sampled", "refused_token_error", "stop_reason", "jump_forward", "forced_tokens"]


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

    The forced text is tokenized together with the request's last token, as the
    tokenizer would split the whole document, and only the tokens that cannot
    change with what follows are appended: the first must reproduce the last token
    (else the forced text would merge into it and nothing is jumped), and the last
    is left for the model, since the text after it may merge with it (a forced
    ``"]\n`` before the model's ``    next``, which the tokenizer writes as ``"]``,
    ``\n   ``, `` next``). So the model continues from the token sequence it was
    trained on, not from a split it has never seen. Each token is fed to the
    matcher; only accepted ones are appended, so the sequence stays inside the
    grammar. They are computed by the next forward as one multi-token chunk.
    """
    c = req.constraint
    if c is None or tokenizer is None or not req.params.jump_forward:
        return 0
    text = c.jump_forward_string()
    if not text:
        return 0
    ids = forced_tokens(tokenizer, req.token_ids[-1] if req.num_output_tokens else None, text)
    added = 0
    for tok in ids:
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


def forced_tokens(tokenizer: Tokenizer, last: int | None, text: str) -> list[int]:
    """The tokens of forced ``text`` that the tokenizer's split of the whole document
    holds whatever follows.

    ``text`` is encoded after the ``last`` token's text; the result must start with
    ``last`` itself (else the forced text merges into it: nothing is jumped). The
    tokens of the final pre-tokenizer piece are left out, since only that piece can
    change with the text after it (a word goes on, a whitespace run gives its last
    space to the next word); without a pre-tokenizer, the final token is left out.
    """
    head = "" if last is None else tokenizer.decode([last], skip_special_tokens=False)
    full = head + text
    enc = tokenizer.encode(full, add_special_tokens=False)
    ids, offsets = list(enc.ids), list(enc.offsets)
    if last is not None:
        if not ids or ids[0] != last or offsets[0][1] != len(head):
            return []
        ids, offsets = ids[1:], offsets[1:]
    pre = tokenizer.pre_tokenizer
    if pre is None:
        return ids[:-1]
    pieces = pre.pre_tokenize_str(full)
    cut = pieces[-1][1][0] if pieces else len(full)
    kept = 0
    while kept < len(ids) and offsets[kept][1] <= cut:
        kept += 1
    return ids[:kept]
