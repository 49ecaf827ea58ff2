"""``TopoScheduler::build_dag`` as ``DSLEngine::run`` calls it.

The engine registers the system nodes of ``create_system_nodes``
(``src/modules/system/system_nodes.cpp``) and then every parsed node, keyed by its
full path. ``build_dag`` (``src/modules/scheduler/topo_scheduler.cpp``) then needs
every ``next`` target, and every path in a node's ``metadata.wait_for`` (a list, or
``all_of`` / ``any_of``), to be a registered node path, verbatim: no template, no
``@version``, no library lookup, no ``/end_soft`` shorthand.
"""

from __future__ import annotations

from collections.abc import Iterable

from agentic_llm.dsl.conformance.construct import RefNode, TypeErrorJson, get_string
from agentic_llm.dsl.conformance.outcome import RuntimeRefusal

__all__ = ["SYSTEM_NODES", "check_dag"]

SYSTEM_NODES = ("/__system__/budget_exceeded", "/__system__/end_soft", "/__system__/noop")


def _wait_for(metadata: object) -> list[str]:
    if not isinstance(metadata, dict) or "wait_for" not in metadata:
        return []
    wf = metadata["wait_for"]
    if isinstance(wf, str):
        return []  # a dynamic expression, resolved while running
    deps: list[str] = []
    if isinstance(wf, dict):
        for key in ("all_of", "any_of"):
            part = wf.get(key)
            if isinstance(part, list):
                deps.extend(get_string(item) for item in part)
            elif isinstance(part, str):
                deps.append(part)
    elif isinstance(wf, list):
        deps.extend(get_string(item) for item in wf)
    return deps


def check_dag(nodes: list[RefNode], loaded: Iterable[str] = ()) -> None:
    """Raise RuntimeRefusal with the reference's message at the first unresolved edge.

    ``loaded`` are node paths the runtime registered before this document: a generated
    subgraph is appended to the program the runtime already runs
    (``DSLEngine::continue_with_generated_dsl``), whose nodes, such as the library
    entries a request declares callable, are registered beside it.
    """
    registered = set(SYSTEM_NODES) | set(loaded) | {n.path for n in nodes}
    for node in nodes:
        for target in node.next:
            if target not in registered:
                raise RuntimeRefusal(
                    "next_not_found", f"Next node not found: {target}", block=node.path
                )
        try:
            deps = _wait_for(node.metadata)
        except TypeErrorJson as exc:
            raise RuntimeRefusal("not_a_string", str(exc), block=node.path) from None
        for dep in deps:
            if dep not in registered:
                raise RuntimeRefusal(
                    "wait_for_not_found", f"wait_for dependency not found: {dep}", block=node.path
                )
