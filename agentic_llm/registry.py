"""A small registry for pluggable parts (engine backends, cache stores, retrievers, ...).

Parts register under a *kind* and a *name* with a decorator; the module that defines
a part is imported only when it is first asked for, so optional dependencies stay
optional. Choosing a part is a dictionary lookup, never an if/elif chain over names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["register", "declare", "get", "names"]

T = TypeVar("T")

# kind -> name -> object, filled by @register when a module is imported
_entries: dict[str, dict[str, Any]] = {}
# kind -> name -> "module.path" that registers it on import
_lazy: dict[str, dict[str, str]] = {}


def register(kind: str, name: str) -> Callable[[T], T]:
    """Register the decorated class or factory as ``name`` of ``kind``."""

    def deco(obj: T) -> T:
        _entries.setdefault(kind, {})[name] = obj
        return obj

    return deco


def declare(kind: str, name: str, module: str) -> None:
    """Say which module registers ``kind``/``name`` without importing it yet."""
    _lazy.setdefault(kind, {})[name] = module


def get(kind: str, name: str) -> Any:
    """Return the part registered as ``name`` of ``kind``, importing it if needed.

    Raises:
        AgenticError: ERR_INVALID_CONFIG when no such part exists, or
            ERR_RESOURCE_UNAVAILABLE when its module (or a dependency) cannot be imported.
    """
    found = _entries.get(kind, {}).get(name)
    if found is not None:
        return found
    module = _lazy.get(kind, {}).get(name)
    if module is None:
        known = sorted(set(_entries.get(kind, {})) | set(_lazy.get(kind, {})))
        raise AgenticError(
            ErrorCode.INVALID_CONFIG, f"no {kind} named {name!r}; choose one of {known}"
        )
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise AgenticError(
            ErrorCode.RESOURCE_UNAVAILABLE,
            f"{kind} {name!r} needs a package that is not installed: {exc}",
        ) from exc
    found = _entries.get(kind, {}).get(name)
    if found is None:
        raise AgenticError(ErrorCode.INTERNAL, f"module {module} did not register {kind} {name!r}")
    return found


def names(kind: str) -> list[str]:
    """Every name known for ``kind``, registered or declared."""
    return sorted(set(_entries.get(kind, {})) | set(_lazy.get(kind, {})))
