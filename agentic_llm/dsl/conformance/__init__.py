"""A model of what the reference AgenticDSL runtime (chisuhua/AgenticDSL) accepts.

``check_runtime(text)`` returns its findings as Diagnostics (parse AND graph build);
``simulate(text)`` returns its verdict, what it read and what it dropped. Each module
models one part of the reference: ``blocks`` its block regex, ``yamljson`` and
``scalars`` its YAML-to-JSON conversion, ``construct`` its per-type node construction,
``parse`` its ``parse_from_string``, ``dag`` its system nodes and ``build_dag``.
docs/conformance.md lists every divergence from the spec with its source line.
"""

from agentic_llm.dsl.conformance.blocks import REGEX_STACK_LIMIT_BYTES
from agentic_llm.dsl.conformance.check import check_runtime
from agentic_llm.dsl.conformance.dag import SYSTEM_NODES
from agentic_llm.dsl.conformance.outcome import Drop, RefGraph, RuntimeOutcome, Stage, Verdict
from agentic_llm.dsl.conformance.scalars import reads_as_string, reference_scalar
from agentic_llm.dsl.conformance.simulate import simulate

__all__ = [
    "check_runtime",
    "simulate",
    "RuntimeOutcome",
    "RefGraph",
    "Drop",
    "Stage",
    "Verdict",
    "reads_as_string",
    "reference_scalar",
    "SYSTEM_NODES",
    "REGEX_STACK_LIMIT_BYTES",
]
