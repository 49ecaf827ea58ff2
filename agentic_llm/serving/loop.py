"""The engine loop the pipeline runs on (defined in :mod:`agentic_llm.engine.loop`)."""

from agentic_llm.engine.loop import Channel, ChannelItem, EngineLoop, StepObserver

__all__ = ["Channel", "ChannelItem", "EngineLoop", "StepObserver"]
