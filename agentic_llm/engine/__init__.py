"""The native inference engine: loader, paged-KV model runner, continuous batching.

Public names are imported lazily so that ``agentic_llm.scheduler`` (which the engine
uses) can import engine submodules without a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "LLMEngine",
    "AsyncLLMEngine",
    "EngineConfig",
    "SamplingParams",
    "RequestOutput",
    "FinishReason",
    "RequestMetrics",
    "DiagnosticsConfig",
    "StepDiagnostics",
    "HookInfo",
    "LoadedModel",
    "load_model",
    "ModelConfig",
    "PrefixCache",
    "PrefixMatch",
]

_WHERE = {
    "LLMEngine": "agentic_llm.engine.llm_engine",
    "AsyncLLMEngine": "agentic_llm.engine.async_engine",
    "EngineConfig": "agentic_llm.engine.engine_config",
    "SamplingParams": "agentic_llm.engine.sampling",
    "RequestOutput": "agentic_llm.engine.outputs",
    "FinishReason": "agentic_llm.engine.outputs",
    "RequestMetrics": "agentic_llm.engine.outputs",
    "DiagnosticsConfig": "agentic_llm.engine.diagnostics",
    "StepDiagnostics": "agentic_llm.engine.diagnostics",
    "HookInfo": "agentic_llm.scheduler.request",
    "LoadedModel": "agentic_llm.engine.loader",
    "load_model": "agentic_llm.engine.loader",
    "ModelConfig": "agentic_llm.engine.config",
    "PrefixCache": "agentic_llm.engine.prefix",
    "PrefixMatch": "agentic_llm.engine.prefix",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agentic_llm.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
