"""Per-step state and the fail-open hook body shared by every adapter."""

from agentic_llm.aga.runtime.injection import InjectionRuntime
from agentic_llm.aga.runtime.step import StepRecord, StepState

__all__ = ["InjectionRuntime", "StepRecord", "StepState"]
