"""``agentic-llm plugin list [--json] [--profile P] [--kind K]``: kinds, providers, versions,
which provider is active and why.

Providers come from the core, from code that registered them, and from packages'
``agentic_llm.plugins`` entry points. For the profile's selections (``cache.store``,
``model.scheduling_policy``, ``aga`` retriever; the default elsewhere) each provider
is loaded and its options validated; a cache store is also started (opened and
closed), so one that fails to start shows the fallback serving in its place.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register", "plugin_report"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("plugin", help="list pluggable parts and their providers", description=__doc__)
    psub = p.add_subparsers(dest="plugin_command", metavar="ACTION", required=True)
    ls = psub.add_parser("list", help="kinds, providers, versions, which is active and why",
                         description="List every plugin kind, its providers and versions, and "
                         "which provider is active for the profile and why.")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("--profile", default=None, help="server profile (name or YAML file) to resolve")
    ls.add_argument("--kind", default=None, help="only this kind")
    ls.set_defaults(func=run_list)


_SELECTABLE = ("scheduling_policy",)


def _selections(config: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    sel: dict[str, tuple[str, dict[str, Any]]] = {
        "scheduling_policy": (config.model.scheduling_policy, {}),
    }
    if config.cache.store != "none":
        sel["cache_store"] = (config.cache.store, dict(config.cache.options))
    return sel


def _activate(kind: str, name: str, options: dict[str, Any], config: Any) -> Any:
    from agentic_llm import registry

    if kind == "cache_store":
        from agentic_llm.cache.stores import open_store, store_config

        c = config.cache
        store = open_store(store_config(name, c.path, c.redis_url, options), role="subgraph_cache",
                           fallback=True, selected_by="cache.store")
        store.close()
        return next(a for a in registry.activations() if a.kind == kind and a.role == "subgraph_cache")
    spec = registry.KINDS.get(kind)
    by = spec.config_key if spec is not None and kind in _SELECTABLE else ""
    return registry.activate(kind, name, options, start=lambda obj, opts: obj, role="", selected_by=by)


def plugin_report(config: Any, kind: str | None = None) -> list[dict[str, Any]]:
    """One record per kind: its providers, and which one is active and why."""
    from agentic_llm import registry
    from agentic_llm.errors import AgenticError

    chosen = _selections(config)
    out = []
    for k in registry.kinds():
        if kind and k != kind:
            continue
        spec = registry.KINDS.get(k)
        name, options = chosen.get(k, (spec.default if spec else "", {}))
        act = None
        error = ""
        if name:
            try:
                act = _activate(k, name, options, config)
            except AgenticError as exc:
                error = exc.message
        provs = []
        for p in registry.providers(k):
            status = "available" if p.loaded else f"unavailable: {p.error}"
            if act is not None and p.name == act.active:
                status = f"active: {act.reason}"
            elif act is not None and p.name == act.requested and act.fell_back:
                status = "failed: " + "; ".join(e for n, e in act.failures if n == p.name)
            provs.append({**p.to_json(), "status": status})
        out.append({
            "kind": k, "description": spec.description if spec else "",
            "default": spec.default if spec else "", "fallback": spec.fallback if spec else "",
            "selected_by": spec.config_key if spec else "", "requested": name,
            "active": act.active if act is not None else "", "fell_back": bool(act and act.fell_back),
            "reason": act.reason if act is not None else error, "providers": provs,
        })
    return out


def run_list(args: argparse.Namespace) -> int:
    from agentic_llm.config import load_config

    report = plugin_report(load_config(args.profile), args.kind)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    for k in report:
        print(f"{k['kind']}: {k['description']} (default {k['default']}, fallback {k['fallback']})")
        for p in k["providers"]:
            mark = "*" if p["name"] == k["active"] else " "
            print(f"  {mark} {p['name']:<14} {p['version'] or '-':<10} {p['source']:<12} {p['status']}")
        if not k["active"] and k["reason"]:
            print(f"    no provider serves: {k['reason']}")
    return 0
