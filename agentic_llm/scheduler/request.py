"""The state of one request inside the engine."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import StrEnum

import torch

from agentic_llm.engine.constraint_state import ConstraintState
from agentic_llm.engine.diagnostics import DiagnosticsConfig, StepDiagnostics
from agentic_llm.engine.outputs import FinishReason, RequestMetrics
from agentic_llm.engine.sampling import SamplingParams
from agentic_llm.errors import AgenticError

__all__ = ["RequestStatus", "HookInfo", "Request"]


class RequestStatus(StrEnum):
    WAITING = "waiting"  # queued, or preempted and waiting to be recomputed
    RUNNING = "running"  # holds KV blocks and is scheduled each step
    FINISHED = "finished"


@dataclass(frozen=True)
class HookInfo:
    """What decoder hooks may know about a request (see ``engine.hooks.HookContext``)."""

    namespaces: tuple[str, ...] = ()
    tenant: str = ""


@dataclass(eq=False)
class Request:
    """One generation request: tokens, KV pages, constraint and progress.

    ``token_ids`` holds the prompt followed by the output; ``num_computed_tokens`` of
    them have K/V in ``block_table``. Tokens past that point (the last sampled token,
    jump-forward tokens, an unfinished prefill) are computed by the next step.

    Scheduling tags (``priority``, ``dag_id``, ``branch_id``) are for policies; the
    FCFS policy ignores them.
    """

    request_id: str
    token_ids: list[int]
    num_prompt_tokens: int
    params: SamplingParams
    generator: torch.Generator
    #: the request's matcher and its lifecycle (None: unconstrained)
    constraint: ConstraintState | None = None
    diagnostics: DiagnosticsConfig | None = None
    hook_info: HookInfo = field(default_factory=HookInfo)
    priority: int = 0
    dag_id: str | None = None
    branch_id: str | None = None
    seq_no: int = 0  # admission order, breaks ties in policies
    status: RequestStatus = RequestStatus.WAITING
    block_table: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    prefix_handle: object | None = None
    finish_reason: FinishReason | None = None
    error: AgenticError | None = None
    last_entropy: float = math.nan
    metrics: RequestMetrics = field(default_factory=lambda: RequestMetrics(time.monotonic()))
    deadline: float | None = None
    step_diagnostics: list[StepDiagnostics] = field(default_factory=list)
    # cursors of what the caller has already been sent
    sent_tokens: int = 0
    sent_diagnostics: int = 0

    @property
    def prompt_token_ids(self) -> list[int]:
        return self.token_ids[: self.num_prompt_tokens]

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_uncomputed_tokens(self) -> int:
        return len(self.token_ids) - self.num_computed_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is RequestStatus.FINISHED
