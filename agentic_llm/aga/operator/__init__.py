"""The injection operator."""

from agentic_llm.aga.operator.bottleneck_injector import BottleneckInjector, InjectionResult

__all__ = ["BottleneckInjector", "InjectionResult"]
