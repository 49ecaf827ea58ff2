"""AGAPlugin: the one entry point of knowledge injection.

    plugin = AGAPlugin(AGAConfig(hidden_dim=4096))
    plugin.attach(model)                  # a transformers model or an engine model
    plugin.register("fact_001", key=k, value=v, namespace="tenant_a")
    output = model.generate(input_ids)    # AGA works inside the forward

Knowledge calls (register, remove, list, pin) are thread-safe and audited; the service
layer calls them per tenant namespace.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from agentic_llm.aga.adapter.base import LLMAdapter, resolve_layers, select_adapter
from agentic_llm.aga.config import AGAConfig
from agentic_llm.aga.encoder.knowledge_encoder import KnowledgeEncoder
from agentic_llm.aga.instrumentation.audit_log import AuditLog
from agentic_llm.aga.instrumentation.event_bus import EventBus, resolve_bus
from agentic_llm.aga.instrumentation.forward_metrics import ForwardMetrics
from agentic_llm.aga.knowledge import iter_jsonl, split_record
from agentic_llm.aga.operator.bottleneck_injector import BottleneckInjector
from agentic_llm.aga.retriever.base import BaseRetriever
from agentic_llm.aga.retriever.governance import GovernedRetrieval, emit_store_state
from agentic_llm.aga.runtime.injection import InjectionRuntime
from agentic_llm.aga.store.kv_store import KVStore
from agentic_llm.aga.streaming import StreamingSession
from agentic_llm.aga.types import DEFAULT_NAMESPACE, SOURCE_REGISTERED
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.registry import get as registry_get

__all__ = ["AGAPlugin"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class AGAPlugin:
    """Entropy-gated knowledge injection into a frozen model's attention outputs.

    Args:
        config: the configuration (default ``AGAConfig()``).
        retriever: an external knowledge source (default from ``retriever_backend``).
        event_bus: where events go (default: a private ring-buffered bus of
            ``event_buffer_size`` events, or the process bus when that is 0).
    """

    def __init__(self, config: AGAConfig | None = None, *, retriever: BaseRetriever | None = None,
                 event_bus: EventBus | None = None) -> None:
        self.config = config or AGAConfig()
        cfg = self.config
        self.event_bus = resolve_bus(event_bus, cfg.event_buffer_size if cfg.instrumentation_enabled else 0)
        device = torch.device("cpu" if cfg.device == "auto" else cfg.device)
        dtype = _DTYPES.get(cfg.dtype, torch.float32)
        self.store = KVStore(cfg.max_slots, cfg.bottleneck_dim, cfg.hidden_dim, device=device,
                             dtype=dtype,
                             value_norm_target=cfg.value_norm_target if cfg.enable_norm_clipping else None)
        self.injector = BottleneckInjector(cfg, device=device, dtype=dtype)
        self.audit = AuditLog(cfg.audit_log_size, cfg.audit_log_level,
                              self.event_bus if cfg.instrumentation_enabled else None)
        self.metrics = ForwardMetrics(cfg.event_buffer_size or 1)
        if retriever is None and cfg.retriever_backend == "kvstore":
            raise AgenticError(ErrorCode.INVALID_CONFIG,
                               "retriever backend 'kvstore' needs its backing store: pass "
                               "retriever=KVStoreRetriever(store)")
        if retriever is None and cfg.retriever_backend != "null":
            retriever = registry_get("aga.retriever", cfg.retriever_backend)()
        self.retriever = retriever or registry_get("aga.retriever", "null")()
        self.retrieval = None if self.retriever.is_null else GovernedRetrieval(
            self.retriever, cfg, self.audit, self.event_bus)
        self.runtime = InjectionRuntime(cfg, self.store, self.injector, self.event_bus,
                                        self.metrics, self.retrieval)
        self._adapter: LLMAdapter | None = None
        self._model: Any = None
        self._encoder: KnowledgeEncoder | None = None
        self._scope = threading.local()

    @classmethod
    def from_config(cls, source: AGAConfig | Mapping[str, Any] | str | Path, **kwargs: Any) -> AGAPlugin:
        """Build from a config, a (nested) dict, or a YAML path."""
        return cls(AGAConfig.from_config(source), **kwargs)

    # -- attach ------------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        """Whether the plugin is hooked into a model."""
        return self._adapter is not None

    def attach(self, model: Any, adapter: LLMAdapter | None = None,
               layers: Sequence[int] | None = None, tokenizer: Any = None) -> AGAPlugin:
        """Hook into ``model`` (transformers model, engine model/engine, or HookRegistry)."""
        if self._adapter is not None:
            raise AgenticError(ErrorCode.INVALID_REQUEST, "plugin is already attached; detach() first")
        adapter = adapter or select_adapter(model)
        n = adapter.num_layers(model)
        self.runtime.set_layers(resolve_layers(self.config.layers if layers is None else layers, n))
        placement = adapter.device_and_dtype(model)
        if placement is not None:
            dev = placement[0] if self.config.device == "auto" else torch.device(self.config.device)
            dt = placement[1] if self.config.dtype == "auto" else _DTYPES[self.config.dtype]
            self.store.to(dev, dt)
            self.injector.to(dev, dt)
        self._warm_up(placement[1] if placement is not None else self.store.dtype)
        adapter.attach(model, self.runtime, self._row_namespaces)
        self._adapter, self._model = adapter, model
        self._encoder = None
        if isinstance(model, torch.nn.Module) and not hasattr(model, "hooks"):
            self._encoder = KnowledgeEncoder(model, self.runtime.first_layer, self.injector,
                                             self.config, tokenizer, self.runtime.suppressed)
        self.audit.record("attach", type(model).__name__, layers=list(self.runtime.layers))
        return self

    def _warm_up(self, hidden_dtype: torch.dtype) -> None:
        """Run the hook's tensor work once on zeros, with every slot hidden, so the first
        real forward does not pay the one-off set-up of these kernels and of the
        projection in the model's dtype (tens of ms on a CPU, more than the fail-open
        timeout: that forward would inject nothing). Changes no state but caches."""
        store, gates = self.store, self.runtime.gates
        device, slots = store.device, store.max_slots
        view = store.get_active()
        with torch.no_grad():
            # one row takes the gather path, enough rows the dense path of the injector
            for rows in (1, slots // max(1, min(self.injector.top_k, slots)) + 1):
                hidden = torch.zeros(rows, self.config.hidden_dim, device=device, dtype=hidden_dtype)
                token_rows = torch.zeros(rows, dtype=torch.long, device=device)
                unc = gates.uncertainty_from_rows(None, token_rows, rows, device)
                gate = gates.finalize(gates.gate1(gates.hidden_variance(hidden) if gates.per_layer
                                                  else unc))
                hidden_slots = torch.ones(rows, slots, dtype=torch.bool, device=device)
                self.injector.inject(hidden, view, hidden_slots, gate, track_usage=False)
            store.visibility(((DEFAULT_NAMESPACE,),))

    def detach(self) -> None:
        """Remove every hook; the model behaves exactly as before ``attach``."""
        if self._adapter is None:
            return
        self._adapter.detach()
        self.audit.record("detach", type(self._model).__name__)
        self._adapter, self._model, self._encoder = None, None, None

    @property
    def encoder(self) -> KnowledgeEncoder:
        """The knowledge encoder of the attached transformers model."""
        if self._encoder is None:
            raise AgenticError(ErrorCode.UNSUPPORTED_CAPABILITY,
                               "text knowledge needs the plugin attached to a transformers model")
        return self._encoder

    # -- namespaces of the current thread (Hugging Face mode) ---------------------------
    @contextlib.contextmanager
    def using_namespaces(self, *namespaces: str | Sequence[str]) -> Iterator[None]:
        """Forwards on this thread see only ``namespaces``; one sequence per batch row
        may be given instead of plain names."""
        old = getattr(self._scope, "namespaces", None)
        self._scope.namespaces = namespaces
        try:
            yield
        finally:
            self._scope.namespaces = old

    def _row_namespaces(self, num_rows: int) -> list[tuple[str, ...]] | None:
        ns = getattr(self._scope, "namespaces", None)
        if ns is None:
            return None
        if ns and all(isinstance(x, str) for x in ns):
            return [tuple(ns)] * num_rows  # type: ignore[arg-type]
        return [tuple(x) for x in ns]

    # -- knowledge -----------------------------------------------------------------------
    def register(self, id: str, key: torch.Tensor, value: torch.Tensor, reliability: float = 1.0,
                 pinned: bool | None = None, metadata: Mapping[str, Any] | None = None,
                 namespace: str | None = None, *, actor: str = "",
                 _operation: str = "register") -> bool:
        """Store knowledge ``id``: ``key`` ``[bottleneck_dim]``, ``value`` ``[hidden_dim]``.

        ``namespace`` defaults to ``metadata["namespace"]``, then ``"default"``;
        ``pinned`` defaults to ``pin_registered``. Raises AgenticError on bad input.
        """
        ns = namespace or (metadata or {}).get("namespace") or DEFAULT_NAMESPACE
        pin = self.config.pin_registered if pinned is None else bool(pinned)
        try:
            existed = self.store.get(id, ns) is not None
            entry, evicted = self.store.put(id, key, value, namespace=ns, reliability=reliability,
                                            pinned=pin, source=SOURCE_REGISTERED, metadata=metadata)
        except AgenticError as exc:
            self.audit.record(_operation, str(id), namespace=str(ns), success=False, actor=actor,
                              level="WARNING", error=exc.code.value)
            raise
        if evicted is not None:
            self.audit.record("evict", evicted.id, namespace=evicted.namespace, reason="lru")
        op = "update" if existed and _operation == "register" else _operation
        self.audit.record(op, id, namespace=ns, actor=actor, slot=entry.slot, pinned=pin,
                          reliability=float(reliability))
        self._emit_store()
        return True

    def register_batch(self, items: Iterable[Mapping[str, Any]], *, actor: str = "") -> int:
        """Register many records (``id``/``key``/``value`` or ``id``/``prompt``/``target``)."""
        return self._register_records(((f"item {i}", item) for i, item in enumerate(items)),
                                      actor=actor, vectors_as_lists=False)

    def load_from(self, path: str | Path, *, actor: str = "") -> int:
        """Register every record of a JSONL file; returns how many."""
        n = self._register_records(((f"{path}:{line}", rec) for line, rec in iter_jsonl(path)),
                                   actor=actor, vectors_as_lists=True)
        self.audit.record("load_from", str(path), actor=actor, count=n)
        return n

    def _register_records(self, records: Iterable[tuple[str, Mapping[str, Any]]], *, actor: str,
                          vectors_as_lists: bool) -> int:
        """Register ``(where, record)`` pairs in order; returns how many.

        ``vectors_as_lists``: the records come from JSON, so their key and value
        vectors are lists to be made float32 tensors.
        """
        n = 0
        for where, rec in records:
            kind, kw = split_record(rec, where)
            if kind == "text":
                self.register_text(kw.pop("id"), kw.pop("prompt"), kw.pop("target"), actor=actor, **kw)
            else:
                entry_id, key, value = kw.pop("id"), kw.pop("key"), kw.pop("value")
                if vectors_as_lists:
                    key = torch.tensor(key, dtype=torch.float32)
                    value = torch.tensor(value, dtype=torch.float32)
                self.register(entry_id, key, value, actor=actor, **kw)
            n += 1
        return n

    def register_text(self, id: str, prompt: str | Sequence[int], target: str | int,
                      **kwargs: Any) -> bool:
        """Encode "``prompt`` -> ``target``" with the host model, then register it."""
        fact = self.encoder.encode(prompt, target)
        meta = dict(kwargs.pop("metadata", None) or {})
        meta.setdefault("target_id", fact.target_id)
        meta.setdefault("encoder_margin", fact.margin)
        return self.register(id, fact.key, fact.value, metadata=meta, **kwargs)

    def calibrate(self, texts: Sequence[str | Sequence[int]]) -> None:
        """Center queries on the mean attention output over ``texts`` (before registering)."""
        if len(self.store):
            raise AgenticError(ErrorCode.INVALID_REQUEST,
                               "calibrate before registering knowledge: keys depend on the center")
        self.injector.set_center(self.encoder.mean_hidden(texts))
        self.audit.record("calibrate", "", texts=len(texts))

    def remove(self, id: str, namespace: str = DEFAULT_NAMESPACE, *, actor: str = "") -> bool:
        """Remove ``id`` from ``namespace``; False when it was not there."""
        entry = self.store.remove(id, namespace)
        self.audit.record("remove", id, namespace=namespace, success=entry is not None, actor=actor)
        self._emit_store()
        return entry is not None

    def clear(self, namespace: str | None = None, *, actor: str = "") -> int:
        """Remove all knowledge (of one namespace); returns how many entries."""
        gone = self.store.clear(namespace)
        self.audit.record("clear", "", namespace=namespace or "*", actor=actor, count=len(gone))
        self._emit_store()
        return len(gone)

    def list_knowledge(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Records (no vectors) of one namespace or all."""
        return [e.to_dict() for e in self.store.entries(namespace)]

    def pin(self, id: str, namespace: str = DEFAULT_NAMESPACE, *, actor: str = "") -> None:
        """Protect ``id`` from eviction."""
        self.store.set_pinned(id, namespace, True)
        self.audit.record("pin", id, namespace=namespace, actor=actor)

    def unpin(self, id: str, namespace: str = DEFAULT_NAMESPACE, *, actor: str = "") -> None:
        """Let ``id`` be evicted again."""
        self.store.set_pinned(id, namespace, False)
        self.audit.record("unpin", id, namespace=namespace, actor=actor)

    def namespaces(self) -> dict[str, int]:
        """Namespace -> number of entries."""
        return self.store.namespaces()

    @property
    def knowledge_count(self) -> int:
        """Entries in the store."""
        return len(self.store)

    # -- diagnostics -----------------------------------------------------------------
    def get_diagnostics(self) -> dict[str, Any]:
        """Store, gate/latency metrics, slot governance and the last step."""
        store = self.store
        return {
            "attached": self.attached,
            "layers": list(self.runtime.layers),
            "knowledge_count": len(store),
            "max_slots": store.max_slots,
            "utilization": store.utilization,
            "pinned_count": store.pinned_count,
            "evictions": store.evictions,
            "namespaces": store.namespaces(),
            "memory_bytes": store.memory_bytes(),
            "uncertainty_source": self.config.gate1_uncertainty_source,
            "forward": self.metrics.summary(),
            "retrieval": self.retrieval.stats() if self.retrieval is not None else None,
            "audit_entries": self.audit.total,
            **self.runtime.diagnostics(),
        }

    def get_audit_trail(self, operation: str | None = None, namespace: str | None = None,
                        limit: int | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Audit entries (oldest first) as dicts, filtered."""
        return [e.to_dict() for e in self.audit.query(operation=operation, namespace=namespace,
                                                      limit=limit, **filters)]

    def row_diagnostics(self) -> list[dict[str, Any]]:
        """Per batch row of the latest step (``request_id``, ``aga_applied``, ``gate_mean``,
        ``layers_applied``): what a server streams next to each request's new token."""
        last = self.runtime.last_record()
        return last.row_diagnostics() if last is not None else []

    def create_streaming_session(self) -> StreamingSession:
        """A session that sees every forward step from now on."""
        session = StreamingSession(self, self.config.streaming_diagnostics_buffer_size)
        self.runtime.add_session(session)
        return session

    def _emit_store(self) -> None:
        emit_store_state(self.event_bus, self.store,
                         self.retrieval.governor.slot_change_rate
                         if self.retrieval is not None else 0.0)
