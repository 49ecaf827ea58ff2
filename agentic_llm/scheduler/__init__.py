"""Request state, scheduling policies and the continuous-batching scheduler."""

from agentic_llm.scheduler.policy import POLICY_KIND, FCFSPolicy, SchedulingPolicy, get_policy
from agentic_llm.scheduler.request import HookInfo, Request, RequestStatus
from agentic_llm.scheduler.scheduler import ScheduledRow, Scheduler, SchedulerOutput

__all__ = [
    "POLICY_KIND",
    "FCFSPolicy",
    "SchedulingPolicy",
    "get_policy",
    "HookInfo",
    "Request",
    "RequestStatus",
    "ScheduledRow",
    "Scheduler",
    "SchedulerOutput",
]
