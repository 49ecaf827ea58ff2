"""What the engine returns for a request."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from agentic_llm.engine.diagnostics import StepDiagnostics
from agentic_llm.errors import AgenticError

__all__ = ["FinishReason", "RequestMetrics", "RequestOutput"]


class FinishReason(StrEnum):
    """Why a request ended."""

    STOP = "stop"  # EOS, a stop token, or the constraint completed
    LENGTH = "length"  # max_tokens or the model's context
    ABORT = "abort"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass
class RequestMetrics:
    """Counters and times (``time.monotonic()``) of one request."""

    arrival_time: float
    first_token_time: float | None = None
    finish_time: float | None = None
    num_cached_tokens: int = 0  # prompt tokens served from the prefix cache
    num_decode_steps: int = 0  # tokens sampled by a forward step
    num_forced_tokens: int = 0  # tokens appended by jump-forward
    num_preemptions: int = 0


@dataclass
class RequestOutput:
    """The state of a request after a step.

    Attributes:
        request_id: the engine's id.
        prompt_token_ids: the prompt.
        output_token_ids: every output token so far.
        new_token_ids: tokens added since the last output for this request.
        finished: the request is over.
        finish_reason: why, once finished.
        error: the error that ended it (finish_reason ``error`` or ``timeout``, or
            ``abort`` with ERR_CANCELLED).
        text: decoded output (set when finished and the model has a tokenizer).
        diagnostics: per-step diagnostics added since the last output
            (all of them in :meth:`LLMEngine.generate` results).
        metrics: counters and times.
    """

    request_id: str
    prompt_token_ids: list[int]
    output_token_ids: list[int]
    new_token_ids: list[int]
    finished: bool
    finish_reason: FinishReason | None
    error: AgenticError | None
    metrics: RequestMetrics
    text: str | None = None
    diagnostics: list[StepDiagnostics] = field(default_factory=list)
