"""``check_runtime``: the reference runtime's findings on a document as Diagnostics.

- ``ERR_RUNTIME_REJECTED`` (error): its parser or graph build throws;
- ``ERR_RUNTIME_CRASH`` (error): it would crash or never finish;
- ``ERR_RUNTIME_DROPPED``: it accepts the document but silently reads less than it
  says: an error when a block, a node or an edge is lost, a warning when only
  declarations it does not act on are (permission mappings);
- ``ERR_RUNTIME_DIVERGENCE`` (warning): spec and reference disagree and the document
  is fine for one of them; the message says which side we follow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from agentic_llm.dsl.conformance.blocks import extract_reference_blocks
from agentic_llm.dsl.conformance.outcome import RuntimeOutcome, Verdict
from agentic_llm.dsl.conformance.simulate import simulate
from agentic_llm.dsl.diagnostics import Diagnostic, Severity
from agentic_llm.dsl.markdown import extract_blocks
from agentic_llm.errors import ErrorCode

__all__ = ["check_runtime", "REASON_HINTS"]

# What to do about each refusal, and where the spec says otherwise.
REASON_HINTS: dict[str, str] = {
    "next_not_found": (
        "every next target must be a node path defined in the document or a /__system__ node; "
        "the spec's /end_soft, templated targets, @version suffixes and library paths that "
        "the document does not define are not resolved by the reference (we follow the "
        "reference: write /__system__/end_soft)"
    ),
    "wait_for_not_found": "metadata.wait_for must name node paths defined in the document",
    "not_a_string": (
        "the reference reads YAML scalars without their quotes: \"2\", \"true\", \"\" and "
        "\"~\" become a number, a boolean or null, and a field that needs a string refuses "
        "them; structured (mapping) signatures are refused too (we follow the reference)"
    ),
    "argument_not_string": (
        "every tool argument must reach the reference as a string: a number, boolean, "
        "null, list or mapping (quoted or not) is refused (we follow the reference)"
    ),
    "missing_key": "a field the reference requires for this node type is missing",
    "missing_id": "every node of a subgraph needs a non-empty string id",
    "missing_output_keys": "the reference requires output_keys on llm/tool/generate nodes",
    "bad_output_keys": "output_keys must be a string or a list of strings",
    "unknown_resource_type": "resource_type must be one the reference knows",
    "invalid_path": "block paths may use only ASCII letters, digits, _, - and /",
    "yaml": "the block's YAML does not parse",
    "json_type_error": "a field has a JSON type the reference cannot index",
    "not_a_number": "llm_params values must be numbers",
    "bad_conversion": "map keys must be scalars",
    "regex_stack": "keep every block (and any unterminated block) well under 24 KB",
    "alias_expansion": "do not use YAML aliases that expand exponentially",
}


def _lines(text: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    for block in extract_reference_blocks(text):
        lines.setdefault(block.path, block.line)
    return lines


def _block_line(path: str | None, lines: dict[str, int]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path.rsplit("/", 1)[0] if "/" in path[1:] else None
    return None


def _unread_blocks(text: str) -> list[Diagnostic]:
    spec_blocks, _ = extract_blocks(text)
    seen = Counter(b.path for b in extract_reference_blocks(text))
    out = []
    for block in spec_blocks:
        if seen[block.path] > 0:
            seen[block.path] -= 1
            continue
        out.append(
            Diagnostic(
                ErrorCode.RUNTIME_DROPPED,
                Severity.ERROR,
                "the reference runtime does not read this block: it only matches "
                "'# AgenticDSL `path`' headings, a ``` or ```yaml fence, BEGIN/END marker "
                "lines and a non-empty body (an empty body swallows the next block); "
                "we follow the reference",
                block.path,
                block.heading_line,
            )
        )
    return out


def _outcome_diagnostics(outcome: RuntimeOutcome, lines: dict[str, int]) -> list[Diagnostic]:
    if outcome.verdict is Verdict.ACCEPT:
        return []
    code = ErrorCode.RUNTIME_CRASH if outcome.verdict is Verdict.CRASH else (
        ErrorCode.RUNTIME_REJECTED
    )
    hint = REASON_HINTS.get(outcome.reason or "", "")
    return [
        Diagnostic(
            code,
            Severity.ERROR,
            f"the reference runtime {outcome.verdict.value}s at {outcome.stage}: "
            f"{outcome.message}" + (f" ({hint})" if hint else ""),
            outcome.block,
            _block_line(outcome.block, lines),
        )
    ]


def check_runtime(text: str | bytes, *, loaded: Iterable[str] = ()) -> list[Diagnostic]:
    """Everything the reference runtime refuses, drops or reads differently in ``text``.

    Runs the model of parse AND graph build; an empty list (or warnings only) means the
    reference accepts the document and runs all of it. ``loaded`` names node paths the
    runtime already holds from the program it runs (a generated subgraph's callable
    library entries): references to them resolve.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="surrogateescape")
    outcome = simulate(text, loaded=loaded)
    if outcome.verdict is Verdict.CRASH:
        return _outcome_diagnostics(outcome, {})  # the blocks cannot be cut: no lines
    lines = _lines(text)
    diags = _outcome_diagnostics(outcome, lines)
    diags.extend(_unread_blocks(text))
    for drop in outcome.drops:
        diags.append(
            Diagnostic(
                ErrorCode.RUNTIME_DROPPED,
                Severity.ERROR if drop.severe else Severity.WARNING,
                f"the reference runtime silently drops {drop.what}: {drop.reason}",
                drop.block,
                _block_line(drop.block, lines),
            )
        )
    if outcome.accepted and outcome.graphs and all(g.path != "/main" for g in outcome.graphs):
        diags.append(
            Diagnostic(
                ErrorCode.RUNTIME_DIVERGENCE,
                Severity.WARNING,
                "no /main subgraph: the reference's DSLEngine::from_markdown refuses such a "
                "document, its continue_with_generated_dsl accepts it; the spec does not "
                "require /main and we follow the spec",
            )
        )
    return diags
