"""Gates deciding where knowledge is injected, and decay across layers."""

from agentic_llm.aga.gate.decay import DecayState, PersistenceDecay
from agentic_llm.aga.gate.entropy_gate import EntropyGateSystem

__all__ = ["EntropyGateSystem", "PersistenceDecay", "DecayState"]
