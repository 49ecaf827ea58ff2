"""Models of what a consumer runtime accepts, beside the spec's own rules.

``scalars`` holds the reference runtime's reading of YAML scalars, which ignores
quoting; the rest of the runtime-conformance model builds on it.
"""

from agentic_llm.dsl.conformance.scalars import reads_as_string, reference_scalar

__all__ = ["reads_as_string", "reference_scalar"]
