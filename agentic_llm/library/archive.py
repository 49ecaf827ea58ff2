"""The solved archive: generated ``/dynamic`` subgraphs whose runs succeeded.

A success reported for a served request stores its subgraph under
``/lib/solved/<hash>`` with the request that produced it (prompt, tools, context
types) and outcome statistics. Near-duplicates (same tools and context types, prompts
at least ``merge_similarity`` alike) merge into one entry. Later requests whose
prompt is similar and whose tools and context cover an entry's are offered it as a
callable library entry; the entry's text is the subgraph rebased to its ``/lib``
path with a signature whose inputs are the context variables it was made for.

Records are per tenant (``lib:solved:<tenant hash>:<hash>``, with a generation
counter ``lib:solvedgen:<tenant hash>:``): tenants never see each other's solutions.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from agentic_llm import dsl
from agentic_llm.config import LibraryConfig
from agentic_llm.library.records import dumpb, loadb

__all__ = ["SolvedEntry", "SolvedArchive", "words", "similarity", "SOLVED_PREFIX"]

SOLVED_PREFIX = "/lib/solved/"
_KEY = "lib:solved:"
_GEN = "lib:solvedgen:"
_WORD = re.compile(r"\{\{\s*[\w.]+\s*\}\}|[a-z0-9_]+")
_MAX_PROMPTS = 8


def words(prompt: str) -> frozenset[str]:
    """The prompt's words, lower-cased; a ``{{ name }}`` placeholder is one word."""
    return frozenset(re.sub(r"\s+", "", w) if w.startswith("{{") else w
                     for w in _WORD.findall(prompt.lower()))


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the two prompts' word sets."""
    return _jaccard(words(a), words(b))


def _jaccard(wa: frozenset[str], wb: frozenset[str]) -> float:
    if not wa and not wb:
        return 1.0
    return len(wa & wb) / len(wa | wb)


def _tenant_key(tenant: str) -> str:
    return f"{_KEY}{hashlib.sha256(tenant.encode()).hexdigest()[:16]}:"


@dataclass
class SolvedEntry:
    """One archived solution.

    Attributes:
        path: ``/lib/solved/<hash>``.
        tenant: whose requests produced it.
        request: the first request (``GenerateRequest.to_json``) that produced it.
        prompts: distinct prompts merged into this entry.
        tools: tool names the request offered.
        context_types: variable name -> type the request had.
        text: the generated document, at the request's target path.
        signature: the signature the library form carries.
        successes, uses, use_successes: archived successes, and later runs that were
            offered this entry with how many of them succeeded.
        latency_ms_sum, cost_sum: over the archived successes.
        created, updated: Unix seconds.
    """

    path: str
    tenant: str
    request: dict[str, Any]
    prompts: list[str]
    tools: list[str]
    context_types: dict[str, str]
    text: str
    signature: str
    successes: int = 1
    uses: int = 0
    use_successes: int = 0
    latency_ms_sum: float = 0.0
    cost_sum: float = 0.0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def target_path(self) -> str:
        return str(self.request["target_path"])

    def library_text(self) -> str:
        """The subgraph rebased to :attr:`path`, with its signature."""
        return rebase(self.text, self.target_path, self.path, self.signature)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SolvedEntry:
        return cls(**obj)


def rebase(text: str, old: str, new: str, signature: str) -> str:
    """``text`` with every path under ``old`` moved under ``new`` and ``signature`` set."""
    moved = re.sub(re.escape(old) + r"(?=[/`\"'\s\]]|$)", new, text)
    sig = f"signature: {json.dumps(signature)}"
    return re.sub(r"^graph_type: subgraph$", f"graph_type: subgraph\n{sig}", moved, count=1, flags=re.M)


def _signature(context_types: dict[str, str]) -> str:
    inputs = ", ".join(f"{k}: {_sig_type(v)}" for k, v in sorted(context_types.items()))
    return f"({inputs})"


def _sig_type(t: str) -> str:
    return t if t in ("string", "number", "integer", "boolean", "array", "object", "any") else "any"


@dataclass(frozen=True)
class _Row:
    """What matching needs of one entry, kept in memory."""

    path: str
    tools: frozenset[str]
    context_types: tuple[tuple[str, str], ...]
    prompts: tuple[frozenset[str], ...]


class SolvedArchive:
    """The ``/lib/solved`` entries, kept in the registry's store.

    Matching reads an in-memory index of each tenant's entries (paths, tools, context
    types, prompt words), rebuilt when the tenant's generation counter in the store
    changes: a new entry or a new prompt bumps it, statistics do not. So a request
    reads one key, not every entry, and another process's additions are seen on its
    next request.
    """

    def __init__(self, store: Any, config: LibraryConfig) -> None:
        self.store = store
        self.config = config
        self._index: dict[str, tuple[int, list[_Row]]] = {}

    # -- index ------------------------------------------------------------------------
    def _gen_key(self, tenant: str) -> str:
        return _GEN + _tenant_key(tenant)[len(_KEY):]

    def _generation(self, tenant: str) -> int:
        raw = self.store.get(self._gen_key(tenant))
        return 0 if raw is None else int(raw)

    def _bump(self, tenant: str) -> None:
        self.store.put(self._gen_key(tenant), str(self._generation(tenant) + 1).encode())

    def _rows(self, tenant: str) -> list[_Row]:
        gen = self._generation(tenant)
        cached = self._index.get(tenant)
        if cached is not None and cached[0] == gen:
            return cached[1]
        rows = [_Row(e.path, frozenset(e.tools), tuple(sorted(e.context_types.items())),
                     tuple(words(p) for p in e.prompts)) for e in self.entries(tenant)]
        self._index[tenant] = (gen, rows)
        return rows

    # -- records ----------------------------------------------------------------------
    def entries(self, tenant: str) -> list[SolvedEntry]:
        out = []
        for key in self.store.keys(_tenant_key(tenant)):
            raw = self.store.get(key)
            if raw is not None:
                out.append(SolvedEntry.from_json(loadb(raw)))
        return sorted(out, key=lambda e: e.created)

    def all_entries(self) -> list[SolvedEntry]:
        out = []
        for key in self.store.keys(_KEY):
            raw = self.store.get(key)
            if raw is not None:
                out.append(SolvedEntry.from_json(loadb(raw)))
        return sorted(out, key=lambda e: e.created)

    def get(self, tenant: str, path: str) -> SolvedEntry | None:
        raw = self.store.get(_tenant_key(tenant) + path[len(SOLVED_PREFIX):])
        return None if raw is None else SolvedEntry.from_json(loadb(raw))

    def _put(self, entry: SolvedEntry) -> None:
        self.store.put(_tenant_key(entry.tenant) + entry.path[len(SOLVED_PREFIX):],
                       dumpb(entry.to_json()))

    def add(self, served: dict[str, Any], *, latency_ms: float = 0.0, cost: float = 0.0) -> str:
        """Archive a served request's subgraph (or merge it into a near-duplicate);
        return the entry's path, or "" when the text is not a valid subgraph."""
        tenant = served.get("tenant", "")
        req = served["request"]
        text = served["text"]
        prompt = str(req["prompt"])
        tools = sorted(t["name"] for t in req.get("tools", []))
        ctypes = dict(req.get("context", {}).get("available_vars", {}))
        pw = words(prompt)
        for row in self._rows(tenant):
            if (sorted(row.tools) == tools and dict(row.context_types) == ctypes
                    and max(_jaccard(pw, w) for w in row.prompts) >= self.config.merge_similarity):
                old = self.get(tenant, row.path)
                if old is None:
                    continue
                old.successes += 1
                old.latency_ms_sum += latency_ms
                old.cost_sum += cost
                old.updated = time.time()
                new_prompt = prompt not in old.prompts and len(old.prompts) < _MAX_PROMPTS
                if new_prompt:
                    old.prompts.append(prompt)
                self._put(old)
                if new_prompt:
                    self._bump(tenant)
                return old.path
        digest = hashlib.sha256(json.dumps([" ".join(prompt.split()), tools, ctypes],
                                           sort_keys=True).encode()).hexdigest()[:16]
        entry = SolvedEntry(path=f"{SOLVED_PREFIX}s{digest}", tenant=tenant, request=req,
                            prompts=[prompt], tools=tools, context_types=ctypes, text=text,
                            signature=_signature(ctypes), latency_ms_sum=latency_ms, cost_sum=cost)
        if dsl.has_errors(dsl.check_text(entry.library_text())):
            return ""
        self._put(entry)
        self._bump(tenant)
        return entry.path

    def count_use(self, tenant: str, path: str, success: bool, latency_ms: float, cost: float) -> None:
        entry = self.get(tenant, path)
        if entry is None:
            return
        entry.uses += 1
        entry.use_successes += int(success)
        entry.updated = time.time()
        self._put(entry)

    def similar(self, tenant: str, prompt: str, tools: set[str], context_types: dict[str, str]
                ) -> list[tuple[float, SolvedEntry]]:
        """Entries a request may be offered: tools and context covered, prompt alike,
        best first."""
        pw = words(prompt)
        scored = []
        for row in self._rows(tenant):
            if not row.tools <= tools:
                continue
            if any(context_types.get(k) != v for k, v in row.context_types):
                continue
            score = max(_jaccard(pw, w) for w in row.prompts)
            if score >= self.config.offer_similarity:
                scored.append((score, row.path))
        scored.sort(key=lambda sp: (-sp[0], sp[1]))
        found = []
        for score, path in scored[: self.config.max_offered]:
            entry = self.get(tenant, path)
            if entry is not None:
                found.append((score, entry))
        return found
