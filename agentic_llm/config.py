"""Typed, frozen, validated configuration of the server, loadable from YAML profiles.

A profile is a YAML mapping with the sections of :class:`ServerConfig`; every section
and key is optional and falls back to the defaults below. Profiles shipped with the
package live in ``agentic_llm/profiles/<name>.yaml``; ``load_config`` takes either a
profile name or a file path, plus ``overrides`` (dotted keys) from the command line.

Every problem is an ``AgenticError`` with ``ERR_INVALID_CONFIG`` naming the key.
The sections that say who may call (``tls``, ``auth``) live in
``agentic_llm.auth_config`` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from agentic_llm.auth_config import AuthConfig, CredentialConfig, TenantQuotas, TLSConfig
from agentic_llm.errors import AgenticError, config_error

__all__ = [
    "ModelConfig",
    "CacheConfig",
    "LimitsConfig",
    "TLSConfig",
    "AuthConfig",
    "CredentialConfig",
    "TenantQuotas",
    "AgaConfig",
    "ObservabilityServerConfig",
    "LibraryConfig",
    "ServerConfig",
    "load_config",
    "profile_names",
    "PROFILE_DIR",
]

PROFILE_DIR = Path(__file__).parent / "profiles"


def _check_store(section: str, store: str, options: Mapping[str, Any]) -> None:
    """``store`` must name a registered cache-store provider (or ``none``); its
    ``options`` are validated when the provider loads (one that cannot load is left
    to fall back at start, not refused here)."""
    from agentic_llm import registry

    known = registry.names("cache_store")
    if store != "none" and store not in known:
        raise config_error(f"{section}.store", f"expected one of {known + ['none']}, got {store!r}")
    if not isinstance(options, Mapping):
        raise config_error(f"{section}.options", f"expected a mapping, got {type(options).__name__}")
    if store == "none":
        return
    if registry.info("cache_store", store).loaded:
        try:
            registry.validate_config("cache_store", store, options)
        except AgenticError as exc:
            raise config_error(f"{section}.options", exc.message) from None


@dataclass(frozen=True)
class ModelConfig:
    """The checkpoint and how the engine holds it.

    ``dir`` empty means the shipped model (``agentic_llm.models.default_model_dir()``)
    or ``AGENTIC_MODEL_DIR`` when set. ``scheduling_policy`` names a registered
    scheduler policy: ``branch_aware`` groups fork siblings, ``fcfs`` is first come.
    ``compile_decode`` builds the decode step with torch's inductor at the first
    decode (tens of seconds; needs a C++ compiler on the CPU, else decoding stays
    eager with a warning). ``chat_template`` frames prompts in the checkpoint's chat
    template when it ships one (an instruct model); false sends the plain prompt.
    ``adapter`` is a LoRA adapter merged into the weights at load: ``auto`` (the
    shipped adapter, when it was trained on this very checkpoint), ``api`` (the
    opt-in adapter trained further on identifier-resolving API sequences, likewise),
    ``none``, or the adapter's directory. ``weight_dtype`` holds the projections'
    weights in a narrower dtype than ``dtype`` (``bfloat16`` under ``float32``: half
    the weight bytes and the CPU's bf16 matmul units; greedy outputs may differ from
    float32, see docs/engine.md); empty keeps them in ``dtype``.
    ``scheduling_options`` are the policy's own settings
    (``coalesce_steps: 0`` admits new work at once under ``branch_aware``; see
    docs/scheduler.md), checked when the configuration loads.
    """

    dir: str = ""
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    weight_dtype: Literal["", "float32", "bfloat16", "float16"] = ""
    num_blocks: int = 1024
    block_size: int = 16
    prefix_cache: bool = True
    scheduling_policy: str = "branch_aware"
    scheduling_options: dict[str, Any] = field(default_factory=dict)
    compile_decode: bool = False
    chat_template: bool = True
    adapter: str = "auto"

    def __post_init__(self) -> None:
        if not self.scheduling_policy:
            raise config_error("model.scheduling_policy", "must name a policy (fcfs, branch_aware)")
        if not isinstance(self.scheduling_options, Mapping):
            raise config_error("model.scheduling_options",
                               f"expected a mapping, got {type(self.scheduling_options).__name__}")
        if self.scheduling_options:  # built once here so a bad option fails at load
            from agentic_llm import registry

            try:
                registry.get("scheduling_policy", self.scheduling_policy)(**self.scheduling_options)
            except (TypeError, ValueError, AgenticError) as exc:
                raise config_error("model.scheduling_options", f"{self.scheduling_policy}: {exc}") from None
        if self.num_blocks < 2:
            raise config_error("model.num_blocks", f"must be >= 2, got {self.num_blocks}")
        if self.block_size < 1 or self.block_size & (self.block_size - 1):
            raise config_error("model.block_size", f"must be a power of two, got {self.block_size}")


@dataclass(frozen=True)
class CacheConfig:
    """The subgraph cache: where entries live and whether near matches may answer.

    ``store`` names any registered ``cache_store`` provider (``memory``, ``lmdb``,
    ``redis``, or one a plugin package adds) or ``none``; ``options`` are that
    provider's own settings, checked against its config schema. A store that fails
    to start is replaced by the default (lmdb at ``path``) or the fallback (memory),
    and the ``plugins`` health check says so.
    """

    store: str = "lmdb"
    path: str = "~/.cache/agentic-llm/subgraphs.lmdb"
    redis_url: str = ""
    fuzzy: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    #: The secret records are authenticated with (HMAC): ``hmac_key_env`` names an
    #: environment variable, ``hmac_key_file`` a file holding it. Neither: LMDB keeps
    #: a key file in its directory, Redis a key per process (see docs/cache.md).
    hmac_key_env: str = ""
    hmac_key_file: str = ""
    ttl_s: float = 7 * 24 * 3600.0

    def resolve_hmac_key(self) -> bytes | None:
        """The configured record key, or None for the store's default."""
        if self.hmac_key_env:
            import os

            value = os.environ.get(self.hmac_key_env, "")
            if len(value) < 16:
                raise config_error("cache.hmac_key_env",
                           f"environment variable {self.hmac_key_env} must hold >= 16 characters")
            return value.encode()
        if self.hmac_key_file:
            try:
                data = Path(self.hmac_key_file).expanduser().read_bytes().strip()
            except OSError as exc:
                raise config_error("cache.hmac_key_file", f"cannot read it: {exc.strerror}") from None
            if len(data) < 16:
                raise config_error("cache.hmac_key_file", "must hold at least 16 bytes")
            return data
        return None

    def __post_init__(self) -> None:
        _check_store("cache", self.store, self.options)
        if self.store == "redis" and not self.redis_url:
            raise config_error("cache.redis_url", "required when cache.store is redis (redis://host:6379/0)")
        if self.store == "lmdb" and not self.path:
            raise config_error("cache.path", "required when cache.store is lmdb")
        if self.ttl_s <= 0:
            raise config_error("cache.ttl_s", "every record needs a TTL: must be > 0")


@dataclass(frozen=True)
class LimitsConfig:
    """Request size, concurrency and time limits.

    At most ``max_concurrent`` generations run at once; up to ``max_queue`` more wait
    for a slot; beyond that a request is refused at once with ERR_OVERLOADED
    (RESOURCE_EXHAUSTED), which is the backpressure signal clients retry on.
    """

    max_request_bytes: int = 4 * 1024 * 1024
    max_concurrent: int = 32
    max_queue: int = 64
    max_fork_branches: int = 16
    default_timeout_sec: float = 60.0
    drain_timeout_sec: float = 30.0
    #: glibc heap bounds of a long-running server (see agentic_llm.server.heap):
    #: at most this many malloc arenas (0: glibc's default), and freed heap pages
    #: handed back to the kernel every this many seconds (0: never).
    malloc_arena_max: int = 2
    malloc_trim_interval_sec: float = 10.0
    #: words the tokenizer's BPE cache keeps (0: the tokenizer's default, 10,000)
    tokenizer_cache_words: int = 4096

    def __post_init__(self) -> None:
        if self.malloc_arena_max < 0 or self.malloc_trim_interval_sec < 0 \
                or self.tokenizer_cache_words < 0:
            raise config_error("limits.malloc_arena_max", "malloc_arena_max and "
                       "malloc_trim_interval_sec must be >= 0 (0: off)")
        if self.max_request_bytes < 1024:
            raise config_error("limits.max_request_bytes", f"must be >= 1024, got {self.max_request_bytes}")
        if self.max_concurrent < 1:
            raise config_error("limits.max_concurrent", f"must be >= 1, got {self.max_concurrent}")
        if self.max_queue < 0:
            raise config_error("limits.max_queue", f"must be >= 0, got {self.max_queue}")
        if self.max_fork_branches < 1:
            raise config_error("limits.max_fork_branches", f"must be >= 1, got {self.max_fork_branches}")
        if self.default_timeout_sec <= 0:
            raise config_error("limits.default_timeout_sec", "must be > 0")
        if self.drain_timeout_sec < 0:
            raise config_error("limits.drain_timeout_sec", "must be >= 0")


#: AGA retrievers ``serve`` can build from its configuration.
AGA_RETRIEVERS: tuple[str, ...] = ("null", "kvstore")


@dataclass(frozen=True)
class AgaConfig:
    """Knowledge injection: off by default; ``config`` is an AGA YAML profile path
    (empty: AGA defaults sized to the model).

    ``retriever``: ``null`` puts registered knowledge straight into the injection
    slots; ``kvstore`` keeps it in a knowledge base of ``knowledge_base_slots``
    entries that the plugin's retriever searches (within the asking request's
    tenant-scoped namespaces) when the model is uncertain, copying what matches into
    the slots under slot governance (docs/aga.md).
    """

    enabled: bool = False
    config: str = ""
    retriever: str = "null"
    knowledge_base_slots: int = 4096

    def __post_init__(self) -> None:
        if self.retriever not in AGA_RETRIEVERS:
            raise config_error("aga.retriever", f"expected one of {list(AGA_RETRIEVERS)}, "
                                                f"got {self.retriever!r}")
        if (not isinstance(self.knowledge_base_slots, int)
                or isinstance(self.knowledge_base_slots, bool) or self.knowledge_base_slots < 1):
            raise config_error("aga.knowledge_base_slots",
                               f"expected a positive integer, got {self.knowledge_base_slots!r}")


@dataclass(frozen=True)
class ObservabilityServerConfig:
    """Metrics and health over HTTP (``/metrics``, ``/health``, ``/livez``, ``/readyz``).

    ``config`` is an observability YAML profile (logs, audit, alerts, tracing); when
    empty, only the HTTP server and the Prometheus exporter run, on ``http_listen``.
    """

    enabled: bool = False
    http_listen: str = "127.0.0.1:9464"
    config: str = ""

    def __post_init__(self) -> None:
        host, sep, port = self.http_listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise config_error("observability.http_listen",
                       f"expected HOST:PORT (port 0 picks a free one), got {self.http_listen!r}")


@dataclass(frozen=True)
class LibraryConfig:
    """The subgraph registry (``/lib`` versions, A/B splits) and the solved archive.

    ``store`` names a registered cache-store provider (``lmdb`` embedded by default,
    ``redis`` when replicas share it, ``memory`` for tests, ``none`` to turn the
    registry off). A version is promoted when its success rate beats every other
    version of the split by ``promote_margin`` after each has ``promote_min_runs``
    reported runs; ``auto_promote`` does so as outcomes arrive. ``admins`` lists the
    tenants that may delete documents (``""`` is the caller without a tenant).
    Archived solutions are offered to requests whose prompt shares at least
    ``offer_similarity`` of its words (Jaccard) and whose tools and context cover
    the solution's; archiving merges into an entry at least ``merge_similarity``
    alike. Without Redis, the records of served requests wait for their outcome in
    the process, at most ``max_pending_outcomes`` of them (the oldest go first; a
    record, the request and its text as JSON, is 1-2 KB) for ``outcome_ttl_sec``.
    """

    store: str = "lmdb"
    path: str = "~/.cache/agentic-llm/library.lmdb"
    redis_url: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    admins: tuple[str, ...] = ("",)
    promote_margin: float = 0.1
    promote_min_runs: int = 20
    auto_promote: bool = False
    archive: bool = True
    offer_similarity: float = 0.5
    merge_similarity: float = 0.85
    max_offered: int = 3
    outcome_ttl_sec: float = 86400.0
    max_pending_outcomes: int = 10_000

    def __post_init__(self) -> None:
        if isinstance(self.admins, str) or not all(isinstance(a, str) for a in self.admins):
            raise config_error("library.admins", "expected a list of tenant names")
        object.__setattr__(self, "admins", tuple(self.admins))
        _check_store("library", self.store, self.options)
        if self.store == "redis" and not self.redis_url:
            raise config_error("library.redis_url", "required when library.store is redis")
        if self.store == "lmdb" and not self.path:
            raise config_error("library.path", "required when library.store is lmdb")
        if not 0.0 <= self.promote_margin <= 1.0:
            raise config_error("library.promote_margin", f"must be in [0, 1], got {self.promote_margin}")
        if self.promote_min_runs < 1:
            raise config_error("library.promote_min_runs", f"must be >= 1, got {self.promote_min_runs}")
        for name in ("offer_similarity", "merge_similarity"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise config_error(f"library.{name}", f"must be in (0, 1], got {v}")
        if self.max_offered < 0:
            raise config_error("library.max_offered", f"must be >= 0, got {self.max_offered}")
        if self.outcome_ttl_sec <= 0:
            raise config_error("library.outcome_ttl_sec", "must be > 0")
        if self.max_pending_outcomes < 1:
            raise config_error("library.max_pending_outcomes",
                               f"must be >= 1, got {self.max_pending_outcomes}")


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``agentic-llm serve`` needs."""

    listen: str = "127.0.0.1:50051"
    model: ModelConfig = field(default_factory=ModelConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    aga: AgaConfig = field(default_factory=AgaConfig)
    observability: ObservabilityServerConfig = field(default_factory=ObservabilityServerConfig)
    library: LibraryConfig = field(default_factory=LibraryConfig)
    reflection: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def __post_init__(self) -> None:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise config_error("listen", f"expected HOST:PORT (port 0 picks a free one), got {self.listen!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerConfig:
        """Build from a nested mapping (a parsed profile); unknown keys are errors."""
        return typing.cast(ServerConfig, _build(cls, data, ""))

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain nested dict (what ``from_dict`` reads back)."""
        return dataclasses.asdict(self)

    def replace(self, **dotted: Any) -> ServerConfig:
        """A copy with dotted keys replaced, e.g. ``replace(**{"limits.max_queue": 8})``."""
        data = self.to_dict()
        for key, value in dotted.items():
            _set_dotted(data, key, value)
        return ServerConfig.from_dict(data)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    cur = data
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            raise config_error(key, f"{p!r} is not a section")
        cur = nxt
    cur[parts[-1]] = value


def _check_value(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise config_error(key, f"expected one of {list(choices)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        return value
    if origin is tuple:
        item_t = typing.get_args(tp)[0]
        if not isinstance(value, list | tuple):
            raise config_error(key, f"expected a list, got {value!r}")
        if dataclasses.is_dataclass(item_t):
            return tuple(_build(typing.cast(type, item_t), v, f"{key}[{i}].")
                         for i, v in enumerate(value))
        return tuple(_check_value(item_t, v, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise config_error(key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise config_error(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise config_error(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str | int):
            raise config_error(key, f"expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type, data: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise config_error(where, f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise config_error(where, f"unknown key(s) {unknown}; known keys: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(typing.cast(type, tp), value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_value(tp, value, f"{prefix}{name}")
    return cls(**kwargs)


def profile_names() -> list[str]:
    """Names of the profiles shipped with the package."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_config(source: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> ServerConfig:
    """Load a profile by name (``"default"``) or a YAML file by path, then apply overrides.

    Raises:
        AgenticError: ERR_INVALID_CONFIG for a missing file, bad YAML or a bad value.
    """
    if source is None:
        source = "default"
    path = Path(source)
    if not path.suffix and not path.exists():
        path = PROFILE_DIR / f"{source}.yaml"
        if not path.exists():
            raise config_error("profile", f"no profile named {source!r}; choose one of {profile_names()} or give a file")
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise config_error("profile", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise config_error("profile", f"{path} is not valid YAML: {exc}") from None
    config = ServerConfig.from_dict(data)
    if overrides:
        config = config.replace(**dict(overrides))
    return config
