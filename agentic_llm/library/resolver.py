"""The planner's view of the library: pin ``/lib/x`` to a version, offer solved entries.

``LibraryResolver.resolve(request)`` returns the request's library entries with every
unversioned path that the registry knows pinned to the version this request gets (the
default, or the split's sticky choice for its ``dag_id`` / tenant), plus archived
solutions similar to the request. The planner records the pinned versions in the
plan and in the subgraph-cache key, so a promotion changes which entries answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentic_llm.library.archive import SOLVED_PREFIX
from agentic_llm.library.registry import SubgraphRegistry
from agentic_llm.library.versions import split_version
from agentic_llm.planner.request import GenerateRequest, LibraryEntry

__all__ = ["Resolution", "LibraryResolver"]


@dataclass(frozen=True)
class Resolution:
    """What the library decided for one request.

    Attributes:
        library: the entries the plan may call (request entries, versions pinned,
            then offered solutions).
        versions: ``(path, version)`` of every entry the registry pinned.
        offered: paths of the archived solutions added.
    """

    library: tuple[LibraryEntry, ...]
    versions: tuple[tuple[str, int], ...] = ()
    offered: tuple[str, ...] = ()


class LibraryResolver:
    """Resolves a request's library against a :class:`SubgraphRegistry`."""

    def __init__(self, registry: SubgraphRegistry) -> None:
        self.registry = registry

    def resolve(self, req: GenerateRequest) -> Resolution:
        entries: list[LibraryEntry] = []
        versions: list[tuple[str, int]] = []
        for e in req.library:
            try:
                base, version = split_version(e.path)
            except Exception:  # noqa: BLE001 - a malformed path is the planner's refusal
                entries.append(e)
                continue
            if base.startswith(SOLVED_PREFIX):
                entries.append(e)
                continue
            doc = self.registry.choose(e.path, tenant=req.tenant, dag_id=req.dag_id)
            if doc is None:
                entries.append(e)
                continue
            versions.append((base, doc.version))
            entries.append(LibraryEntry(path=doc.versioned_path,
                                        signature=e.signature or doc.signature,
                                        description=e.description or doc.description))
        offered: list[str] = []
        if req.target_path.startswith("/dynamic/") and self.registry.config.max_offered:
            taken = {split_version(x.path)[0] if x.path.startswith("/lib/") else x.path for x in entries}
            tools = {t.name for t in req.tools}
            ctypes = dict(req.context.available_vars)
            for score, sol in self.registry.archive.similar(req.tenant, req.prompt, tools, ctypes):
                if sol.path in taken:
                    continue
                offered.append(sol.path)
                entries.append(LibraryEntry(
                    path=sol.path, signature=sol.signature,
                    description=f"solved before ({sol.successes} successes, similarity {score:.2f}): "
                                f"{sol.prompts[0][:80]}"))
        return Resolution(tuple(entries), tuple(versions), tuple(offered))

    def served_record(self, plan: Any, text: str, valid: bool) -> dict[str, Any]:
        """What the registry keeps about a served request until its outcome arrives."""
        req = plan.request
        rec: dict[str, Any] = {
            "tenant": req.tenant, "target_path": plan.target_path,
            "versions": {p: v for p, v in plan.library_versions},
            "offered": list(plan.offered), "request": req.to_json(),
        }
        if valid and plan.target_path.startswith("/dynamic/"):
            rec["text"] = text
        return rec
