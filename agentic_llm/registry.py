"""The plugin kernel: providers of pluggable parts, their contract, loading and fallback.

A *provider* is a class or factory registered under a *kind* and a *name*. Kinds the
core knows (``KINDS``) each have a default provider and a fallback; choosing a part is
a lookup here, never an if/elif chain over names.

Registration, three ways:

- in code, with the decorator: ``@register("cache_store", "memory", version="1.0")``;
- lazily, by naming the module that registers it: ``declare(kind, name, "pkg.mod")``
  (or ``"pkg.mod:Attr"`` to register an attribute of a module that does not);
- by a package's entry point in the ``agentic_llm.plugins`` group, named
  ``<kind>.<name>`` and pointing at the provider: ``cache_store.sqlite =
  acme_store:SqliteStore``. Entry points are read on first use; nothing is imported
  until a provider is asked for.

The contract a provider may declare with class attributes (all optional):
``provider_version`` (str), ``config_schema`` (option name -> ``(type, default)``;
a default of ``REQUIRED`` makes it mandatory) and ``health()`` on the started
instance (a bool, a status string or a ``CheckResult``).

``activate(kind, name, config, start=...)`` loads a provider, validates ``config``
against its schema and starts it; when that fails the reason is logged and the
kind's default, then its fallback, are tried. The last activation of each kind (and
role) is kept, so ``agentic-llm plugin list`` and the ``plugins`` health check say
which provider serves and why.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = [
    "register", "declare", "get", "names", "KINDS", "KindSpec", "ProviderInfo", "Activation",
    "REQUIRED", "ENTRY_POINT_GROUP", "providers", "info", "validate_config", "activate",
    "activations", "refresh_entry_points", "health_check", "kinds", "unregister",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")
ENTRY_POINT_GROUP = "agentic_llm.plugins"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: ``config_schema`` default of an option that must be given.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class KindSpec:
    """A kind of part the core uses: its default provider and its fallback."""

    kind: str
    description: str
    default: str
    fallback: str
    config_key: str = ""  # the profile key that selects it, if any


KINDS: dict[str, KindSpec] = {k.kind: k for k in (
    KindSpec("attention_backend", "paged attention kernels of the engine", "torch_sdpa", "torch_sdpa"),
    KindSpec("scheduling_policy", "which waiting requests the engine admits", "branch_aware", "fcfs",
             "model.scheduling_policy"),
    KindSpec("cache_store", "where subgraph-cache and library records live", "lmdb", "memory",
             "cache.store"),
    KindSpec("aga.retriever", "external knowledge source of AGA", "null", "null",
             "aga.config retriever_backend"),
    KindSpec("model_backend", "the engine that runs the model", "agentic", "agentic",
             "serve --backend"),
    KindSpec("grammar_target_runtime", "the runtime dialect the grammar emits for", "agenticdsl",
             "agenticdsl"),
)}


@dataclass
class ProviderInfo:
    """What the kernel knows about one provider.

    ``source``: ``code`` (registered on import), ``declared`` (a module named in the
    core, imported on first use) or ``entry_point`` (a package's entry point).
    ``error``: why it could not be loaded, once a load failed.
    """

    kind: str
    name: str
    source: str
    target: str = ""
    obj: Any = None
    version: str = ""
    description: str = ""
    config_schema: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    error: str = ""
    loader: Callable[[], Any] | None = field(default=None, repr=False)

    @property
    def loaded(self) -> bool:
        return self.obj is not None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "version": self.version, "source": self.source,
                "target": self.target, "loaded": self.loaded, "error": self.error,
                "description": self.description,
                "config": {k: {"type": getattr(t, "__name__", str(t)),
                               "default": None if d is REQUIRED else d, "required": d is REQUIRED}
                           for k, (t, d) in self.config_schema.items()}}


@dataclass(frozen=True)
class Activation:
    """The outcome of :func:`activate`: which provider serves a kind, and why."""

    kind: str
    role: str
    requested: str
    active: str
    reason: str
    instance: Any = field(default=None, repr=False, compare=False)
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def fell_back(self) -> bool:
        return self.active != self.requested

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "role": self.role, "requested": self.requested,
                "active": self.active, "reason": self.reason, "fell_back": self.fell_back,
                "failures": [{"provider": n, "error": e} for n, e in self.failures]}


_lock = threading.RLock()
_providers: dict[str, dict[str, ProviderInfo]] = {}
_activations: dict[tuple[str, str], Activation] = {}
_entry_points_read = False


def _describe(info: ProviderInfo, obj: Any) -> None:
    info.obj = obj
    info.version = str(getattr(obj, "provider_version", "") or info.version or _module_version(obj))
    schema = getattr(obj, "config_schema", None)
    if isinstance(schema, Mapping):
        info.config_schema = dict(schema)
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    info.description = info.description or (doc[0] if doc else "")


def _module_version(obj: Any) -> str:
    root = (getattr(obj, "__module__", "") or "").split(".")[0]
    if root == "agentic_llm":
        from agentic_llm import __version__

        return __version__
    try:
        from importlib.metadata import version

        return version(root)
    except Exception:  # noqa: BLE001 - a provider without distribution metadata
        return ""


def register(kind: str, name: str, *, version: str = "", description: str = "") -> Callable[[T], T]:
    """Register the decorated class or factory as ``name`` of ``kind`` (in code)."""

    def deco(obj: T) -> T:
        with _lock:
            known = _providers.setdefault(kind, {}).get(name)
            info = known if known is not None and known.obj is None else ProviderInfo(kind, name, "code")
            info.version = version or info.version
            info.description = description or info.description
            info.error = ""
            if not info.target:
                info.target = f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', name)}"
            _describe(info, obj)
            _providers[kind][name] = info
        return obj

    return deco


def declare(kind: str, name: str, module: str) -> None:
    """Say which module registers ``kind``/``name`` without importing it yet
    (``"pkg.mod:Attr"``: register that attribute when it is first asked for)."""
    with _lock:
        known = _providers.setdefault(kind, {}).get(name)
        if known is not None and known.obj is not None:
            return
        _providers[kind][name] = ProviderInfo(kind, name, "declared", target=module,
                                              loader=_module_loader(kind, name, module))


def _module_loader(kind: str, name: str, target: str) -> Callable[[], Any]:
    def load() -> Any:
        module, _, attr = target.partition(":")
        mod = importlib.import_module(module)
        if attr:
            return getattr(mod, attr)
        found = _providers.get(kind, {}).get(name)
        if found is None or found.obj is None:
            raise AgenticError(ErrorCode.INTERNAL, f"module {module} did not register {kind} {name!r}")
        return found.obj

    return load


def unregister(kind: str, name: str) -> bool:
    """Forget provider ``name`` of ``kind`` and its activations (tests, hot reload)."""
    with _lock:
        gone = _providers.get(kind, {}).pop(name, None) is not None
        for key, act in list(_activations.items()):
            if act.kind == kind and name in (act.requested, act.active):
                del _activations[key]
    return gone


def refresh_entry_points() -> int:
    """Read the ``agentic_llm.plugins`` entry points again (e.g. after a package was
    installed or a directory added to ``sys.path``); returns how many were found."""
    global _entry_points_read
    from importlib.metadata import entry_points

    found = 0
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        kind, sep, name = ep.name.rpartition(".")
        if not sep or not kind or not name:
            _log.warning("plugin entry point %r is not named <kind>.<name>; ignored", ep.name)
            continue
        found += 1
        with _lock:
            known = _providers.setdefault(kind, {}).get(name)
            if known is not None and known.source != "entry_point":
                _log.warning("plugin entry point %s=%s would replace the built-in %s %r; ignored",
                             ep.name, ep.value, kind, name)
                continue
            if known is not None and known.target == ep.value:
                continue
            dist = getattr(ep, "dist", None)
            _providers[kind][name] = ProviderInfo(
                kind, name, "entry_point", target=ep.value, loader=ep.load,
                version=str(getattr(dist, "version", "") or ""))
    _entry_points_read = True
    return found


def _ensure_entry_points() -> None:
    if not _entry_points_read:
        refresh_entry_points()


def _load(info: ProviderInfo) -> Any:
    if info.obj is not None:
        return info.obj
    assert info.loader is not None
    try:
        obj = info.loader()
    except AgenticError as exc:
        info.error = exc.message
        raise
    except ImportError as exc:
        info.error = f"needs a package that is not installed: {exc}"
        raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE,
                           f"{info.kind} {info.name!r} {info.error}") from exc
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the server down
        info.error = f"failed to load: {type(exc).__name__}: {exc}"
        raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE, f"{info.kind} {info.name!r} {info.error}") from exc
    with _lock:
        _describe(info, obj)
        info.error = ""
    return obj


def _info(kind: str, name: str) -> ProviderInfo:
    _ensure_entry_points()
    found = _providers.get(kind, {}).get(name)
    if found is None:
        raise AgenticError(ErrorCode.INVALID_CONFIG, f"no {kind} named {name!r}; choose one of {names(kind)}")
    return found


def get(kind: str, name: str) -> Any:
    """Return the provider registered as ``name`` of ``kind``, importing it if needed.

    Raises:
        AgenticError: ERR_INVALID_CONFIG when no such provider exists, or
            ERR_RESOURCE_UNAVAILABLE when it (or a dependency) cannot be loaded.
    """
    return _load(_info(kind, name))


def info(kind: str, name: str) -> ProviderInfo:
    """The kernel's record of a provider, loading it to read its contract (a load
    failure is kept in ``error``, not raised)."""
    found = _info(kind, name)
    with contextlib.suppress(AgenticError):
        _load(found)
    return found


def names(kind: str) -> list[str]:
    """Every name known for ``kind``: registered, declared or from an entry point."""
    _ensure_entry_points()
    return sorted(_providers.get(kind, {}))


def kinds() -> list[str]:
    """The core's kinds, then any other kind a provider registered."""
    _ensure_entry_points()
    return list(KINDS) + sorted(set(_providers) - set(KINDS))


def providers(kind: str | None = None) -> list[ProviderInfo]:
    """Provider records of ``kind`` (every kind when None), each loaded if it can be."""
    return [info(k, n) for k in ([kind] if kind else kinds()) for n in names(k)]


def validate_config(kind: str, name: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``config`` checked against the provider's ``config_schema``, defaults filled in.

    Raises:
        AgenticError: ERR_INVALID_CONFIG naming the unknown, missing or mistyped option.
    """
    schema = info(kind, name).config_schema
    config = dict(config or {})
    if not schema:
        if config:
            raise AgenticError(ErrorCode.INVALID_CONFIG,
                               f"{kind} {name!r} takes no options, got {sorted(config)}")
        return {}
    unknown = sorted(set(config) - set(schema))
    if unknown:
        raise AgenticError(ErrorCode.INVALID_CONFIG,
                           f"{kind} {name!r}: unknown option(s) {unknown}; known: {sorted(schema)}")
    out: dict[str, Any] = {}
    for key, (tp, default) in schema.items():
        if key not in config:
            if default is REQUIRED:
                raise AgenticError(ErrorCode.INVALID_CONFIG, f"{kind} {name!r}: option {key!r} is required")
            out[key] = default
            continue
        value = config[key]
        if isinstance(tp, type) and not isinstance(value, tp) and not (tp is float and isinstance(value, int)):
            raise AgenticError(ErrorCode.INVALID_CONFIG,
                               f"{kind} {name!r}: option {key!r} must be {tp.__name__}, "
                               f"got {type(value).__name__}")
        out[key] = value
    return out


def activate(kind: str, name: str, config: Mapping[str, Any] | None = None, *,
             start: Callable[[Any, dict[str, Any]], Any] | None = None, role: str = "",
             fallback: bool = True, selected_by: str = "") -> Activation:
    """Load, validate and start provider ``name``; on failure, the kind's default and
    then its fallback (with their own default options), each failure logged.

    ``start(provider, options)`` builds the running part (default: call the provider
    with the validated options as keywords, or with none). ``selected_by`` names the
    setting that chose ``name`` (shown in the reason).

    Raises:
        AgenticError: the requested provider's error when every candidate failed (or
            ``fallback`` is False).
    """
    spec = KINDS.get(kind)
    candidates = [name]
    if fallback and spec is not None:
        candidates += [c for c in (spec.default, spec.fallback) if c not in candidates]
    failures: list[tuple[str, str]] = []
    first: AgenticError | None = None
    for cand in candidates:
        try:
            obj = get(kind, cand)
            opts = validate_config(kind, cand, config if cand == name else None)
            instance = start(obj, opts) if start is not None else (obj(**opts) if callable(obj) else obj)
        except Exception as exc:  # noqa: BLE001 - any failure to start means: try the next
            err = exc if isinstance(exc, AgenticError) else AgenticError(
                ErrorCode.RESOURCE_UNAVAILABLE, f"{kind} {cand!r} failed to start: {type(exc).__name__}: {exc}")
            first = first or err
            failures.append((cand, err.message))
            if cand == name and len(candidates) > 1:
                _log.warning("%s %r failed (%s); falling back", kind, cand, err.message)
            continue
        if cand == name:
            reason = "selected" + (f" by {selected_by}" if selected_by else "")
            if spec is not None and cand == spec.default:
                reason += " (the default)"
        else:
            why = "; ".join(f"{n}: {e}" for n, e in failures)
            reason = f"fallback: {why}"
            _log.warning("%s: serving with %r because %s", kind, cand, why)
        act = Activation(kind, role, name, cand, reason, instance, tuple(failures))
        with _lock:
            _activations[(kind, role)] = act
        return act
    assert first is not None
    with _lock:
        _activations[(kind, role)] = Activation(kind, role, name, "", "no provider could start",
                                                None, tuple(failures))
    raise first


def activations() -> list[Activation]:
    """The last activation of every kind and role in this process."""
    with _lock:
        return list(_activations.values())


def health_check() -> Any:
    """The ``plugins`` health check: degraded while any kind runs on a fallback, or
    when a started provider's own ``health()`` says so."""
    from agentic_llm.observability.health import DEGRADED, HEALTHY, CheckResult

    problems = []
    data: dict[str, Any] = {}
    for act in activations():
        label = f"{act.kind}{'/' + act.role if act.role else ''}"
        data[label] = act.active or "none"
        if act.fell_back:
            problems.append(f"{label}: {act.requested!r} not serving, {act.active!r} is ({act.reason})")
        probe = getattr(act.instance, "health", None)
        if callable(probe):
            try:
                verdict = probe()
            except Exception as exc:  # noqa: BLE001 - a failing probe is a result
                verdict = f"{type(exc).__name__}: {exc}"
            if verdict not in (True, None, HEALTHY) and getattr(verdict, "status", HEALTHY) != HEALTHY:
                problems.append(f"{label}: provider {act.active!r} reports {verdict}")
    if problems:
        return CheckResult(DEGRADED, "; ".join(problems), data)
    return CheckResult(HEALTHY, "", data)


# -- the core's own providers, imported on first use --------------------------------------
declare("cache_store", "memory", "agentic_llm.cache.stores.memory")
declare("cache_store", "lmdb", "agentic_llm.cache.stores.lmdb_store")
declare("cache_store", "redis", "agentic_llm.cache.stores.redis_store")
declare("attention_backend", "torch_sdpa", "agentic_llm.engine.attention.torch_sdpa")
declare("scheduling_policy", "fcfs", "agentic_llm.scheduler.policy")
declare("scheduling_policy", "branch_aware", "agentic_llm.scheduler.branch_aware")
declare("aga.retriever", "null", "agentic_llm.aga.retriever.null_retriever")
declare("aga.retriever", "kvstore", "agentic_llm.aga.retriever.kvstore_retriever")
declare("model_backend", "agentic", "agentic_llm.engine.llm_engine:LLMEngine")
declare("model_backend", "sglang", "agentic_llm.integrations.sglang.executor:SGLangExecutor")
declare("grammar_target_runtime", "agenticdsl", "agentic_llm.grammar.compiler:GrammarCompiler")
