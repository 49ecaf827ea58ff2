"""The AgenticDSL standard library as data: paths, versions and signatures.

``data/standard_library.json`` lists the subgraphs the spec's library documents
define (LibSpec v3.9, Standard Library v1.0, and the reference repository's ``lib/``)
with their signatures in the string form of :mod:`agentic_llm.dsl.signature`. The
validator resolves references to them; the planner offers them as callable when the
request's permissions grant their prefix (``lib:/lib/reasoning``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from agentic_llm.dsl.signature import Signature, parse_signature

__all__ = ["StdlibEntry", "standard_library", "is_standard_library_ref"]


@dataclass(frozen=True)
class StdlibEntry:
    """One standard-library subgraph: its path (no version), major version, stability,
    signature string and the document that defines it."""

    path: str
    version: str
    stability: str
    signature: str
    source: str

    @property
    def versioned_path(self) -> str:
        """The path with its version suffix, e.g. ``/lib/reasoning/try_catch@v1``."""
        return f"{self.path}@v{self.version}"

    def parsed_signature(self) -> Signature:
        return parse_signature(self.signature)


@lru_cache(maxsize=1)
def standard_library() -> tuple[StdlibEntry, ...]:
    """Every standard-library entry, sorted by path."""
    raw = resources.files("agentic_llm.dsl").joinpath("data/standard_library.json").read_text(
        encoding="utf-8"
    )
    data = json.loads(raw)
    return tuple(
        StdlibEntry(e["path"], str(e["version"]), e["stability"], e["signature"], e["source"])
        for e in data["entries"]
    )


@lru_cache(maxsize=1)
def _refs() -> frozenset[str]:
    out: set[str] = set()
    for entry in standard_library():
        out.add(entry.path)
        out.add(entry.versioned_path)
    return frozenset(out)


def is_standard_library_ref(target: str) -> bool:
    """True for a standard-library path, bare or with its own version suffix."""
    return target in _refs()
