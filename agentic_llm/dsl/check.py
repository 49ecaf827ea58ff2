"""``check_text``: parse and validate in one call that never raises on bad input."""

from __future__ import annotations

from agentic_llm.dsl.diagnostics import Diagnostic, DSLParseError, Severity, has_errors
from agentic_llm.dsl.limits import ParseLimits
from agentic_llm.dsl.parser import parse
from agentic_llm.dsl.policy import ValidationPolicy
from agentic_llm.dsl.validate import validate
from agentic_llm.errors import ErrorCode

__all__ = ["check_text", "is_valid"]


def check_text(
    text: str | bytes,
    policy: ValidationPolicy | None = None,
    *,
    limits: ParseLimits | None = None,
) -> list[Diagnostic]:
    """Parse and validate ``text``; every problem comes back as a Diagnostic.

    Parse errors are returned as they are (validation needs a Document); an empty list
    means the text is valid and clean. A failure inside the checker itself comes back
    as an ``ERR_INTERNAL`` diagnostic rather than an exception, so a service checking
    untrusted text never fails on it.
    """
    if not isinstance(text, str | bytes | bytearray):
        raise TypeError(f"check_text() takes str or bytes, not {type(text).__name__}")
    try:
        doc = parse(text, limits=limits)
        return validate(doc, policy)
    except DSLParseError as exc:
        return list(exc.diagnostics)
    except RecursionError:
        return [Diagnostic(ErrorCode.NESTING_TOO_DEEP, Severity.ERROR, "input nests too deeply")]
    except (TypeError, ValueError, LookupError, AttributeError) as exc:
        return [
            Diagnostic(
                ErrorCode.INTERNAL,
                Severity.ERROR,
                f"the checker failed on this input ({type(exc).__name__}: {exc}); please report it",
            )
        ]


def is_valid(text: str | bytes, policy: ValidationPolicy | None = None) -> bool:
    """True when ``text`` parses and validates without errors (warnings allowed)."""
    return not has_errors(check_text(text, policy))
