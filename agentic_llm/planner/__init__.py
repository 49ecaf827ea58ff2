"""Request -> ExecutionPlan: namespace policy, whitelist, grants, budget, prompt, cache key.

    from agentic_llm.planner import GenerateRequest, plan
    p = plan(GenerateRequest.from_json(open("req.json").read()))
    prompt = p.render_prompt()
"""

from agentic_llm.planner.plan import CacheKey, ExecutionPlan, PlanRefusal, plan
from agentic_llm.planner.prompt import STABLE_PROMPT_PREFIX
from agentic_llm.planner.request import (
    Budget,
    ContextState,
    GenerateRequest,
    LibraryEntry,
    RequestFlags,
    Sampling,
    ToolArgument,
    ToolSpec,
)

__all__ = [
    "GenerateRequest",
    "ToolArgument",
    "ToolSpec",
    "LibraryEntry",
    "ContextState",
    "Budget",
    "Sampling",
    "RequestFlags",
    "ExecutionPlan",
    "CacheKey",
    "PlanRefusal",
    "plan",
    "STABLE_PROMPT_PREFIX",
]
