"""``simulate``: the reference runtime's verdict on a document, parse and graph build."""

from __future__ import annotations

from collections.abc import Iterable

from agentic_llm.dsl.conformance.blocks import (
    REGEX_STACK_LIMIT_BYTES,
    extract_reference_blocks,
    longest_regex_scan,
)
from agentic_llm.dsl.conformance.dag import check_dag
from agentic_llm.dsl.conformance.outcome import RuntimeOutcome, RuntimeRefusal, Stage, Verdict
from agentic_llm.dsl.conformance.parse import parse_blocks
from agentic_llm.dsl.conformance.yamljson import ExpansionTooLarge

__all__ = ["simulate"]


def simulate(text: str | bytes, *, loaded: Iterable[str] = ()) -> RuntimeOutcome:
    """What ``MarkdownParser::parse_from_string`` followed by the node registration and
    ``TopoScheduler::build_dag`` of ``DSLEngine::run`` do with ``text``.

    ``loaded``: node paths the runtime holds already from the program it runs (for a
    generated subgraph, e.g. the library entries its request declared callable).
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="surrogateescape")
    scan, line = longest_regex_scan(text)
    if scan >= REGEX_STACK_LIMIT_BYTES:
        return RuntimeOutcome(
            Verdict.CRASH,
            Stage.PARSE,
            "regex_stack",
            f"the block pattern walks {scan} bytes from line {line}; the reference's "
            f"std::regex overflows its stack from about 27 KB (refused from "
            f"{REGEX_STACK_LIMIT_BYTES})",
        )
    blocks = extract_reference_blocks(text)
    try:
        program = parse_blocks(blocks)
    except RuntimeRefusal as exc:
        return RuntimeOutcome(Verdict.REJECT, Stage.PARSE, exc.reason, exc.message, exc.block)
    except ExpansionTooLarge as exc:
        return RuntimeOutcome(
            Verdict.CRASH,
            Stage.PARSE,
            "alias_expansion",
            f"block '{exc.args[0]}': expanding its YAML aliases never finishes",
            str(exc.args[0]),
        )
    outcome = RuntimeOutcome(Verdict.ACCEPT, graphs=program.graphs, drops=program.drops)
    try:
        check_dag(program.nodes, loaded)
    except RuntimeRefusal as exc:
        outcome.verdict = Verdict.REJECT
        outcome.stage = Stage.BUILD_DAG
        outcome.reason, outcome.message, outcome.block = exc.reason, exc.message, exc.block
    return outcome
