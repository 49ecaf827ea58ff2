"""Versioned library paths (``/lib/x@v3``) and version ranges (``>=2,<4``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["split_version", "versioned", "VersionRange", "LIB_PATH"]

LIB_PATH = re.compile(r"/lib(?:/[\w\-]+)+")
_VERSIONED = re.compile(r"(/lib(?:/[\w\-]+)+)(?:@v(\d+))?")
_BOUND = re.compile(r"\s*(>=|<=|==|>|<|=)?\s*v?(\d+)\s*")


def split_version(path: str) -> tuple[str, int | None]:
    """``/lib/x@v2`` -> ``("/lib/x", 2)``; ``/lib/x`` -> ``("/lib/x", None)``.

    Raises:
        AgenticError: ERR_INVALID_PATH for anything that is not a /lib path.
    """
    m = _VERSIONED.fullmatch(path)
    if m is None:
        raise AgenticError(ErrorCode.INVALID_PATH,
                           f"{path!r} is not a library path (e.g. /lib/math/add or /lib/math/add@v2)",
                           field="path")
    return m.group(1), (int(m.group(2)) if m.group(2) else None)


def versioned(path: str, version: int) -> str:
    return f"{path}@v{version}"


@dataclass(frozen=True)
class VersionRange:
    """Comma-separated bounds: ``>=2,<4``, ``v3`` (exactly 3), empty (every version)."""

    lo: int = 0
    hi: int | None = None  # inclusive

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        lo, hi = 0, None
        for part in (p for p in text.split(",") if p.strip()):
            m = _BOUND.fullmatch(part)
            if m is None:
                raise AgenticError(ErrorCode.INVALID_REQUEST,
                                   f"version range {text!r}: cannot read {part.strip()!r} "
                                   "(use >=N, >N, <=N, <N, ==N or vN, comma-separated)",
                                   field="versions")
            op, n = m.group(1) or "==", int(m.group(2))
            if op in (">=",):
                lo = max(lo, n)
            elif op == ">":
                lo = max(lo, n + 1)
            elif op == "<=":
                hi = n if hi is None else min(hi, n)
            elif op == "<":
                hi = n - 1 if hi is None else min(hi, n - 1)
            else:
                lo = max(lo, n)
                hi = n if hi is None else min(hi, n)
        return cls(lo, hi)

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and version >= self.lo and (self.hi is None or version <= self.hi)
