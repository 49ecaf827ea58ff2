"""The Subgraph Registry: versioned ``/lib`` documents, A/B splits, outcomes, promotion.

Records live in a cache store (``agentic_llm.cache.stores``: LMDB embedded, Redis
shared by replicas, memory for tests) under these keys::

    lib:doc:<path>@v<N>    a published version (LibraryDocument)
    lib:entry:<path>       default version and traffic split (PathEntry)
    lib:stat:<path>@v<N>   reported outcomes of runs that used that version
    lib:req:<request id>   what a served request resolved, until its outcome arrives
                           (Redis only; other stores keep it in the serving process)

Read-modify-write updates (statistics, splits) hold a process lock; replicas sharing
one Redis may lose an increment when two report the same version at the same instant.
"""

from __future__ import annotations

import builtins
import hashlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from agentic_llm import dsl
from agentic_llm.config import LibraryConfig
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.library.pending import PendingOutcomes
from agentic_llm.library.records import (
    STICKY,
    VISIBILITIES,
    LibraryDocument,
    PathEntry,
    VersionStats,
    check_choice,
    dumpb,
    loadb,
)
from agentic_llm.library.versions import VersionRange, split_version

__all__ = ["SubgraphRegistry", "VersionView", "OutcomeReport", "Promotion"]

_DOC, _ENTRY, _STAT, _REQ = "lib:doc:", "lib:entry:", "lib:stat:", "lib:req:"


@dataclass(frozen=True)
class VersionView:
    """One version as ``ListVersions`` returns it."""

    document: LibraryDocument
    stats: VersionStats
    is_default: bool
    weight: float


@dataclass(frozen=True)
class Promotion:
    path: str
    version: int
    previous: int
    reason: str


@dataclass(frozen=True)
class OutcomeReport:
    """What one ``ReportOutcome`` changed."""

    request_id: str
    versions: tuple[str, ...]
    archived_path: str = ""
    promoted: tuple[Promotion, ...] = ()


def _denied(message: str) -> AgenticError:
    return AgenticError(ErrorCode.PERMISSION_DENIED, message)


def _missing(message: str, **details: Any) -> AgenticError:
    return AgenticError(ErrorCode.NOT_FOUND, message, **details)


class SubgraphRegistry:
    """Publish, read, split, measure and promote versions of ``/lib`` subgraphs.

    Args:
        store: an open ``CacheStore``.
        config: promotion rule, admins, archive settings.
    """

    def __init__(self, store: Any, config: LibraryConfig | None = None) -> None:
        self.store = store
        self.config = config or LibraryConfig(store="memory")
        self._lock = threading.RLock()
        self._shared_pending = self.config.store == "redis"
        self._pending = PendingOutcomes(self.config.max_pending_outcomes, self.config.outcome_ttl_sec)
        from agentic_llm.library.archive import SolvedArchive
        from agentic_llm.library.resolver import LibraryResolver

        self.archive = SolvedArchive(store, self.config)
        self.resolver = LibraryResolver(self)

    def close(self) -> None:
        self.store.close()

    # -- records ------------------------------------------------------------------------
    def _load(self, key: str) -> Any:
        raw = self.store.get(key)
        return None if raw is None else loadb(raw)

    def _doc(self, path: str, version: int) -> LibraryDocument | None:
        obj = self._load(f"{_DOC}{path}@v{version}")
        return None if obj is None else LibraryDocument.from_json(obj)

    def _entry(self, path: str) -> PathEntry | None:
        obj = self._load(f"{_ENTRY}{path}")
        return None if obj is None else PathEntry.from_json(obj)

    def _put_entry(self, entry: PathEntry) -> None:
        self.store.put(f"{_ENTRY}{entry.path}", dumpb(entry.to_json()))

    def _versions(self, path: str) -> list[LibraryDocument]:
        docs = []
        for key in self.store.keys(f"{_DOC}{path}@v"):
            obj = self._load(key)
            if obj is not None:
                docs.append(LibraryDocument.from_json(obj))
        return sorted(docs, key=lambda d: d.version)

    def entry(self, path: str) -> PathEntry | None:
        """The default version and split of ``path`` (versionless), or None."""
        return self._entry(split_version(path)[0])

    def stats(self, path: str, version: int) -> VersionStats:
        obj = self._load(f"{_STAT}{path}@v{version}")
        return VersionStats() if obj is None else VersionStats.from_json(obj)

    def all_stats(self) -> list[tuple[str, int, VersionStats, bool]]:
        """``(path, version, stats, is_default)`` of every published version."""
        out = []
        for key in self.store.keys(_DOC):
            base, _, v = key[len(_DOC):].rpartition("@v")
            entry = self._entry(base)
            out.append((base, int(v), self.stats(base, int(v)),
                        entry is not None and entry.default_version == int(v)))
        return sorted(out, key=lambda t: (t[0], t[1]))

    def collector(self) -> Any:
        """A Prometheus collector of the per-version metrics, read at scrape time
        (``agentic_llm.library.metrics``); what a serving pipeline hands to its
        observability stack."""
        from agentic_llm.library.metrics import LibraryCollector

        return LibraryCollector(self)

    def metrics_text(self) -> str:
        """The per-version metrics in the Prometheus text format."""
        from prometheus_client import CollectorRegistry, generate_latest

        reg = CollectorRegistry(auto_describe=False)
        reg.register(self.collector())
        return generate_latest(reg).decode()

    def is_admin(self, tenant: str) -> bool:
        return tenant in self.config.admins

    # -- publish / read -----------------------------------------------------------------
    def publish(self, path: str, text: str, *, tenant: str = "", visibility: str = "public",
                tenants: Iterable[str] = (), description: str = "") -> LibraryDocument:
        """Validate ``text`` and store it as the next (or the named) version of ``path``.

        ``path`` is ``/lib/x`` (next version) or ``/lib/x@vN`` (exactly N, which must
        be new). The document must hold a block at ``/lib/x`` with a signature and
        pass the validator with no error. The first version becomes the default.

        Raises:
            AgenticError: ERR_INVALID_PATH, ERR_SIGNATURE_REQUIRED, the validator's
                first error code, ERR_INVALID_REQUEST (version exists, bad
                visibility), ERR_PERMISSION_DENIED (path owned by another tenant).
        """
        base, version = split_version(path)
        if base.startswith("/lib/solved/"):
            raise AgenticError(ErrorCode.NAMESPACE_VIOLATION,
                               "/lib/solved/ is written by the solved archive, not by publish",
                               field="path")
        check_choice(visibility, VISIBILITIES, "visibility")
        signature = _check_document(base, text)
        with self._lock:
            entry = self._entry(base)
            if entry is not None and entry.owner != tenant and not self.is_admin(tenant):
                raise _denied(f"{base} belongs to tenant {entry.owner!r}; only it or an admin may publish")
            existing = [d.version for d in self._versions(base)]
            if version is None:
                version = max(existing, default=0) + 1
            elif version in existing:
                raise AgenticError(ErrorCode.INVALID_REQUEST,
                                   f"{base}@v{version} is already published; versions are immutable",
                                   field="path")
            if version < 1:
                raise AgenticError(ErrorCode.INVALID_PATH, "versions start at v1", field="path")
            doc = LibraryDocument(path=base, version=version, text=text, signature=signature,
                                  visibility=visibility, tenants=tuple(tenants), publisher=tenant,
                                  created=time.time(), description=description)
            self.store.put(f"{_DOC}{doc.versioned_path}", dumpb(doc.to_json()))
            if entry is None:
                self._put_entry(PathEntry(path=base, default_version=version, owner=tenant))
        return doc

    def get(self, path: str, *, tenant: str = "") -> LibraryDocument:
        """``/lib/x@vN``, or the current default of ``/lib/x``.

        Raises:
            AgenticError: ERR_NOT_FOUND (also for a version this tenant may not see).
        """
        base, version = split_version(path)
        if version is None:
            entry = self._entry(base)
            if entry is None:
                raise _missing(f"{base} is not in the library", path=base)
            version = entry.default_version
        doc = self._doc(base, version)
        if doc is None or not doc.visible_to(tenant):
            raise _missing(f"{base}@v{version} is not in the library", path=base)
        return doc

    def list(self, prefix: str = "/lib/", *, versions: str = "", tenant: str = "",
             include_deprecated: bool = True) -> list[LibraryDocument]:
        """Versions under ``prefix`` within the range ``versions`` that ``tenant`` sees."""
        vr = VersionRange.parse(versions)
        out = []
        for key in self.store.keys(f"{_DOC}{prefix}"):
            obj = self._load(key)
            if obj is None:
                continue
            doc = LibraryDocument.from_json(obj)
            if doc.version in vr and doc.visible_to(tenant) and (include_deprecated or not doc.deprecated):
                out.append(doc)
        return sorted(out, key=lambda d: (d.path, d.version))

    def list_versions(self, path: str, *, tenant: str = "", versions: str = "") -> builtins.list[VersionView]:
        """Every visible version of ``path`` with its statistics, default flag and weight."""
        base, _ = split_version(path)
        entry = self._entry(base)
        if entry is None:
            raise _missing(f"{base} is not in the library", path=base)
        vr = VersionRange.parse(versions)
        return [VersionView(d, self.stats(base, d.version), d.version == entry.default_version,
                            entry.weights.get(d.version, 0.0))
                for d in self._versions(base) if d.version in vr and d.visible_to(tenant)]

    def _owned(self, base: str, tenant: str) -> PathEntry:
        entry = self._entry(base)
        if entry is None:
            raise _missing(f"{base} is not in the library", path=base)
        if entry.owner != tenant and not self.is_admin(tenant):
            raise _denied(f"{base} belongs to tenant {entry.owner!r}")
        return entry

    def deprecate(self, path: str, *, tenant: str = "", deprecated: bool = True) -> LibraryDocument:
        """Mark ``/lib/x@vN`` deprecated (never the default, never in a split)."""
        base, version = split_version(path)
        if version is None:
            raise AgenticError(ErrorCode.INVALID_PATH, "deprecate needs a version: /lib/x@vN", field="path")
        with self._lock:
            entry = self._owned(base, tenant)
            doc = self._doc(base, version)
            if doc is None:
                raise _missing(f"{base}@v{version} is not in the library", path=base)
            live = [d.version for d in self._versions(base) if not d.deprecated and d.version != version]
            if deprecated and version == entry.default_version:
                if not live:
                    raise AgenticError(ErrorCode.INVALID_REQUEST,
                                       f"{base}@v{version} is the only live version; publish another first")
                entry = replace(entry, default_version=max(live))
            weights = {v: w for v, w in entry.weights.items() if not (deprecated and v == version)}
            self._put_entry(replace(entry, weights=weights))
            doc = replace(doc, deprecated=deprecated)
            self.store.put(f"{_DOC}{doc.versioned_path}", dumpb(doc.to_json()))
        return doc

    def delete(self, path: str, *, tenant: str = "") -> int:
        """Remove ``/lib/x@vN`` or every version of ``/lib/x`` (admins only)."""
        if not self.is_admin(tenant):
            raise _denied(f"only an admin tenant {list(self.config.admins)} may delete library documents")
        base, version = split_version(path)
        with self._lock:
            docs = [d for d in self._versions(base) if version is None or d.version == version]
            if not docs:
                raise _missing(f"{path} is not in the library", path=path)
            keys = [f"{_DOC}{d.versioned_path}" for d in docs] + [f"{_STAT}{d.versioned_path}" for d in docs]
            removed = self.store.delete(keys)
            rest = [d for d in self._versions(base) if not d.deprecated] or self._versions(base)
            entry = self._entry(base)
            if not rest:
                self.store.delete([f"{_ENTRY}{base}"])
            elif entry is not None:
                gone = {d.version for d in docs}
                default = entry.default_version if entry.default_version not in gone else rest[-1].version
                self._put_entry(replace(entry, default_version=default,
                                        weights={v: w for v, w in entry.weights.items() if v not in gone}))
        return int(removed)

    # -- A/B ------------------------------------------------------------------------------
    def set_split(self, path: str, weights: dict[int, float], *, sticky: str = "dag_id",
                  tenant: str = "") -> PathEntry:
        """Split ``path``'s traffic between versions by weight (empty: the default only)."""
        base, _ = split_version(path)
        check_choice(sticky, STICKY, "sticky")
        with self._lock:
            entry = self._owned(base, tenant)
            live = {d.version for d in self._versions(base) if not d.deprecated}
            for v, w in weights.items():
                if v not in live:
                    raise AgenticError(ErrorCode.INVALID_REQUEST,
                                       f"{base}@v{v} is not a live version (live: {sorted(live)})",
                                       field="weights")
                if not w >= 0.0:
                    raise AgenticError(ErrorCode.INVALID_REQUEST, f"weight of v{v} must be >= 0",
                                       field="weights")
            if weights and sum(weights.values()) <= 0:
                raise AgenticError(ErrorCode.INVALID_REQUEST, "the weights sum to zero", field="weights")
            entry = replace(entry, weights={v: w for v, w in weights.items() if w > 0}, sticky=sticky)
            self._put_entry(entry)
        return entry

    def choose(self, path: str, *, tenant: str = "", dag_id: str | None = None) -> LibraryDocument | None:
        """The version a request with this ``tenant`` and ``dag_id`` gets, or None when
        ``path`` is not in the library (or not visible to ``tenant``)."""
        base, version = split_version(path)
        entry = self._entry(base)
        if entry is None:
            return None
        if version is None:
            version = entry.default_version
            if entry.weights:
                key = (dag_id or tenant) if entry.sticky == "dag_id" else tenant
                version = _pick(entry.weights, f"{base}|{key}")
        doc = self._doc(base, version)
        return doc if doc is not None and doc.visible_to(tenant) else None

    # -- outcomes ---------------------------------------------------------------------------
    def note_served(self, request_id: str, record: dict[str, Any]) -> None:
        """Remember what ``request_id`` resolved until its outcome is reported.

        With a Redis store the record is shared, so any replica takes the report;
        otherwise it stays in this process (bounded, oldest dropped first), which
        keeps an fsync off every request's path.
        """
        if not (record.get("versions") or record.get("offered") or record.get("text")):
            return
        expires = time.time() + self.config.outcome_ttl_sec
        if self._shared_pending:
            self.store.put(f"{_REQ}{request_id}", dumpb(record), expires_at=expires)
            return
        self._pending.put(request_id, record)

    @property
    def pending_outcomes(self) -> PendingOutcomes:
        """Served requests held in this process until their outcome is reported
        (empty with a shared Redis store)."""
        return self._pending

    def served(self, request_id: str) -> dict[str, Any] | None:
        if self._shared_pending:
            obj = self._load(f"{_REQ}{request_id}")
            return obj if isinstance(obj, dict) else None
        return self._pending.get(request_id)

    def _forget(self, request_id: str) -> None:
        if self._shared_pending:
            self.store.delete([f"{_REQ}{request_id}"])
        else:
            self._pending.pop(request_id)

    def report_outcome(self, request_id: str, *, success: bool, latency_ms: float = 0.0,
                       cost: float = 0.0, tenant: str = "") -> OutcomeReport:
        """Count the outcome of a served request against every version it used; archive
        a successful generated ``/dynamic`` subgraph.

        Raises:
            AgenticError: ERR_NOT_FOUND (unknown, expired or already reported
                request), ERR_PERMISSION_DENIED (another tenant's request),
                ERR_INVALID_REQUEST (negative latency or cost).
        """
        if latency_ms < 0 or cost < 0:
            raise AgenticError(ErrorCode.INVALID_REQUEST, "latency and cost must be >= 0")
        with self._lock:
            rec = self.served(request_id)
            if rec is None:
                raise _missing(f"no served request {request_id!r} awaits an outcome "
                               "(unknown, expired, or already reported)", request_id=request_id)
            if rec.get("tenant", "") != tenant and not self.is_admin(tenant):
                raise _denied(f"request {request_id} belongs to another tenant")
            self._forget(request_id)
            used = list(rec.get("versions", {}).items())
            for base, version in used:
                st = self.stats(base, int(version))
                st.add(success, latency_ms, cost)
                self.store.put(f"{_STAT}{base}@v{version}", dumpb(st.to_json()))
            for solved in rec.get("offered", []):
                self.archive.count_use(rec.get("tenant", ""), solved, success, latency_ms, cost)
            archived = ""
            if success and self.config.archive and rec.get("text"):
                archived = self.archive.add(rec, latency_ms=latency_ms, cost=cost)
            promoted: list[Promotion] = []
            if self.config.auto_promote:
                for base, _ in used:
                    found = self._winner(base)
                    if isinstance(found, Promotion):
                        promoted.append(self._apply(found))
        return OutcomeReport(request_id, tuple(f"{b}@v{v}" for b, v in used), archived, tuple(promoted))

    # -- promotion --------------------------------------------------------------------------
    def _winner(self, base: str) -> Promotion | str:
        """The version that wins the split by the configured margin, or why none does."""
        entry = self._entry(base)
        if entry is None:
            return f"{base} is not in the library"
        live = [d.version for d in self._versions(base) if not d.deprecated]
        contenders = sorted(entry.weights) if entry.weights else live
        if len(contenders) < 2:
            return f"{base} has fewer than two versions to compare"
        need, margin = self.config.promote_min_runs, self.config.promote_margin
        stats = {v: self.stats(base, v) for v in contenders}
        short = [f"v{v} has {s.runs}" for v, s in stats.items() if s.runs < need]
        if short:
            return f"not enough runs (need {need} each): " + ", ".join(short)
        best = max(contenders, key=lambda v: (stats[v].success_rate, -stats[v].mean_latency_ms))
        runner = max((v for v in contenders if v != best), key=lambda v: stats[v].success_rate)
        gap = stats[best].success_rate - stats[runner].success_rate
        if gap < margin:
            return (f"v{best} leads v{runner} by {gap:.3f} in success rate; "
                    f"the margin to promote is {margin}")
        return Promotion(base, best, entry.default_version,
                         f"v{best} success {stats[best].success_rate:.3f} over v{runner} "
                         f"{stats[runner].success_rate:.3f} after {stats[best].runs}/{stats[runner].runs} runs")

    def _apply(self, promo: Promotion) -> Promotion:
        entry = self._entry(promo.path)
        assert entry is not None
        self._put_entry(replace(entry, default_version=promo.version, weights={}))
        return promo

    def promote(self, path: str, *, version: int | None = None, tenant: str = "") -> Promotion:
        """Make the split's winner the default of ``path`` and end the split.

        ``version``: promote only if that version is the winner.

        Raises:
            AgenticError: ERR_INVALID_REQUEST with the reason when no version wins by
                the configured margin over the minimum runs, or another one does.
        """
        base, named = split_version(path)
        version = version if version is not None else named
        with self._lock:
            self._owned(base, tenant)
            found = self._winner(base)
            if isinstance(found, str):
                raise AgenticError(ErrorCode.INVALID_REQUEST, f"cannot promote {base}: {found}")
            if version is not None and found.version != version:
                raise AgenticError(ErrorCode.INVALID_REQUEST,
                                   f"cannot promote {base}@v{version}: {found.reason}")
            return self._apply(found)


def _pick(weights: dict[int, float], key: str) -> int:
    """A version drawn by weight, the same one every time for the same key."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64
    total = sum(weights.values())
    acc = 0.0
    ordered = sorted(weights.items())
    for version, w in ordered:
        acc += w / total
        if h < acc:
            return version
    return ordered[-1][0]


def _check_document(base: str, text: str) -> str:
    """The signature of ``text``'s block at ``base`` after validation, or a refusal."""
    diags = dsl.check_text(text, dsl.ValidationPolicy(writable_prefixes=(base,)))
    errors = [d for d in diags if d.is_error]
    if errors:
        first = errors[0]
        raise AgenticError(first.code, f"the document does not validate: {first.message}",
                           diagnostics=[d.message for d in errors[:5]])
    doc = dsl.parse(text)
    block = doc.block(base)
    if not isinstance(block, dsl.Subgraph | dsl.NodeBlock):
        raise AgenticError(ErrorCode.INVALID_PATH,
                           f"the document has no block at {base} (blocks: {list(doc.paths)})", field="path")
    if block.signature is None:
        raise AgenticError(ErrorCode.SIGNATURE_REQUIRED, f"a library document needs a signature at {base}")
    return str(block.signature)
