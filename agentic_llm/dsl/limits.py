"""Caps on what the parser will read, so hostile input fails fast with a clear code."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ParseLimits", "DEFAULT_LIMITS"]


@dataclass(frozen=True)
class ParseLimits:
    """Input caps.

    Attributes:
        max_input_bytes: largest document, in UTF-8 bytes (``ERR_INPUT_TOO_LARGE``).
        max_depth: deepest YAML nesting of mappings and lists (``ERR_NESTING_TOO_DEEP``).
        max_values: most YAML values one block may expand to, aliases counted at
            every use, which stops "billion laughs" documents (``ERR_INPUT_TOO_LARGE``).
        max_aliases: most alias uses (``*name``) in one block.
        max_blocks: most blocks in one document.
    """

    max_input_bytes: int = 1_000_000
    max_depth: int = 32
    max_values: int = 200_000
    max_aliases: int = 1_000
    max_blocks: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_input_bytes", "max_depth", "max_values", "max_aliases", "max_blocks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ParseLimits.{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = ParseLimits()
