"""``parse``: Markdown text to :class:`Document`."""

from __future__ import annotations

from agentic_llm.dsl.build import BuildProblem, build_block, problem_diagnostic
from agentic_llm.dsl.diagnostics import Diagnostic, DSLParseError, Severity
from agentic_llm.dsl.document import Block, Document
from agentic_llm.dsl.limits import DEFAULT_LIMITS, ParseLimits
from agentic_llm.dsl.markdown import extract_blocks
from agentic_llm.dsl.yamlload import YamlProblem, load_block_yaml
from agentic_llm.errors import ErrorCode

__all__ = ["parse", "decode_input"]


def _fatal(code: ErrorCode, message: str, *, line: int | None = None) -> DSLParseError:
    """A parse error with one diagnostic about the whole document."""
    return DSLParseError([Diagnostic(code, Severity.ERROR, message, None, line)])


def decode_input(data: str | bytes, limits: ParseLimits) -> str:
    """Check the size cap and decode bytes as UTF-8.

    Raises:
        DSLParseError: too large, or not UTF-8.
    """
    if isinstance(data, str):
        # A str's UTF-8 size is at least its length; encode only when close to the cap.
        size = (
            len(data)
            if len(data) > limits.max_input_bytes
            else len(data.encode("utf-8", "surrogatepass"))
        )
    elif isinstance(data, bytes | bytearray):
        size = len(data)
    else:
        raise TypeError(f"parse() takes str or bytes, not {type(data).__name__}")
    if size > limits.max_input_bytes:
        raise _fatal(
            ErrorCode.INPUT_TOO_LARGE,
            f"document is {size} bytes; the limit is {limits.max_input_bytes} "
            "(raise ParseLimits.max_input_bytes to accept larger input)",
        )
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fatal(
            ErrorCode.SYNTAX,
            f"document is not UTF-8 text (bad byte at offset {exc.start})",
            line=bytes(data).count(b"\n", 0, exc.start) + 1,
        ) from None


def parse(text: str | bytes, *, limits: ParseLimits | None = None) -> Document:
    """Read an AgenticDSL Markdown document.

    Every heading form the reference runtime and the spec accept is read (see
    :mod:`agentic_llm.dsl.markdown`); both signature forms are read into
    :class:`Signature`. Prose between blocks is ignored.

    Raises:
        DSLParseError: the text cannot be represented as a Document; its
            ``diagnostics`` list every problem found, with line numbers.
    """
    limits = limits or DEFAULT_LIMITS
    source = decode_input(text, limits)
    raw_blocks, diags = extract_blocks(source)
    if len(raw_blocks) > limits.max_blocks:
        raise _fatal(
            ErrorCode.INPUT_TOO_LARGE,
            f"document has {len(raw_blocks)} blocks; the limit is {limits.max_blocks}",
        )
    blocks: list[Block] = []
    for raw in raw_blocks:
        try:
            value, lines = load_block_yaml(raw.yaml, limits, raw.path, raw.yaml_line)
        except YamlProblem as exc:
            diags.append(exc.diagnostic)
            continue
        try:
            blocks.append(build_block(raw.path, value, lines, raw.heading_line))
        except BuildProblem as exc:
            diags.append(problem_diagnostic(exc, raw.path, lines, raw.heading_line))
    if diags:
        diags.sort(key=lambda d: d.line or 0)
        raise DSLParseError(diags)
    return Document(tuple(blocks))
