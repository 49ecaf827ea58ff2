"""Knowledge administration over an ``agentic_llm.aga.AGAPlugin`` attached to the engine."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.serving.knowledge import KnowledgeRecord
from agentic_llm.tenancy import scoped_namespace, split_namespace

__all__ = ["AgaKnowledgeAdmin", "attach_aga"]


class AgaKnowledgeAdmin:
    """:class:`~agentic_llm.serving.knowledge.KnowledgeAdmin` over an AGA plugin.

    An entry's ``key`` is the prompt and its ``text`` the target the plugin encodes
    into a knowledge slot (``AGAPlugin.register_text``); both are kept in the slot's
    metadata so that listing shows them.

    With a ``knowledge_base`` (the store a ``KVStoreRetriever`` of the plugin
    searches), entries are kept there instead of in the injection slots: the
    retriever copies the ones matching an uncertain request's query into the slots,
    only within that request's (tenant-scoped) namespaces. Removing or replacing an
    entry also drops its copy from the slots.
    """

    def __init__(self, plugin: Any, knowledge_base: Any = None) -> None:
        self.plugin = plugin
        self.knowledge_base = knowledge_base

    def register(self, *, tenant: str, namespace: str, key: str, text: str,
                 metadata: Mapping[str, str], entry_id: str | None,
                 key_vector: Sequence[float] = (), value_vector: Sequence[float] = (),
                 reliability: float = 1.0) -> str:
        ns = scoped_namespace(tenant, namespace)
        kid = entry_id or uuid.uuid4().hex[:16]
        meta: dict[str, Any] = {**dict(metadata), "key": key, "text": text, "tenant": tenant}
        actor = tenant or "admin"
        if key_vector or value_vector:
            if not (key_vector and value_vector):
                raise AgenticError(ErrorCode.INVALID_REQUEST,
                                   "give both key_vector and value_vector, or neither",
                                   field="entry.value_vector" if key_vector else "entry.key_vector")
            import torch

            k = torch.tensor(list(key_vector), dtype=torch.float32)
            v = torch.tensor(list(value_vector), dtype=torch.float32)
            if self.knowledge_base is None:
                self.plugin.register(kid, k, v, reliability=reliability, metadata=meta,
                                     namespace=ns, actor=actor)
                return kid
        else:
            if not key or not text:
                raise AgenticError(ErrorCode.INVALID_REQUEST,
                                   "a knowledge entry needs key and text, or both vectors",
                                   field="entry.key" if not key else "entry.text")
            if self.knowledge_base is None:
                self.plugin.register_text(kid, key, text, namespace=ns, metadata=meta,
                                          actor=actor, reliability=reliability)
                return kid
            fact = self.plugin.encoder.encode(key, text)
            k, v = fact.key, fact.value
            meta.setdefault("target_id", fact.target_id)
            meta.setdefault("encoder_margin", fact.margin)
        self._put_in_base(kid, k, v, ns, meta, actor, reliability)
        return kid

    def _put_in_base(self, kid: str, key: Any, value: Any, ns: str, meta: Mapping[str, Any],
                     actor: str, reliability: float) -> None:
        base, audit = self.knowledge_base, self.plugin.audit
        existed = base.get(kid, ns) is not None
        try:
            # pinned: an entry stays until removed; a full base refuses new entries
            base.put(kid, key, value, namespace=ns, reliability=reliability, pinned=True,
                     metadata=meta)
        except AgenticError as exc:
            audit.record("register", kid, namespace=ns, success=False, actor=actor,
                         level="WARNING", error=exc.code.value, store="knowledge_base")
            raise
        audit.record("update" if existed else "register", kid, namespace=ns, actor=actor,
                     store="knowledge_base", reliability=float(reliability))
        if existed:
            self._drop_slot_copy(kid, ns, actor)

    def _drop_slot_copy(self, kid: str, ns: str, actor: str) -> None:
        """Remove the retrieved copy of ``kid`` from the injection slots, if any."""
        if self.plugin.store.get(kid, ns) is not None:
            self.plugin.remove(kid, ns, actor=actor)

    def remove(self, *, tenant: str, namespace: str, entry_id: str) -> bool:
        ns = scoped_namespace(tenant, namespace)
        actor = tenant or "admin"
        if self.knowledge_base is None:
            return bool(self.plugin.remove(entry_id, ns, actor=actor))
        gone = self.knowledge_base.remove(entry_id, ns) is not None
        self.plugin.audit.record("remove", entry_id, namespace=ns, success=gone, actor=actor,
                                 store="knowledge_base")
        self._drop_slot_copy(entry_id, ns, actor)
        return gone

    def list(self, *, tenant: str, namespace: str) -> list[KnowledgeRecord]:
        wanted = scoped_namespace(tenant, namespace) if namespace else None
        records = (self.plugin.list_knowledge(wanted) if self.knowledge_base is None
                   else [e.to_dict() for e in self.knowledge_base.entries(wanted)])
        out = []
        for rec in records:
            rel = split_namespace(tenant, str(rec.get("namespace", "")))
            if rel is None:
                continue
            meta = dict(rec.get("metadata") or {})
            key, text = str(meta.pop("key", "")), str(meta.pop("text", ""))
            meta.pop("tenant", None)
            out.append(KnowledgeRecord(
                id=str(rec["id"]), tenant=tenant, namespace=rel, key=key, text=text,
                metadata={str(k): str(v) for k, v in meta.items()}))
        return out


def attach_aga(engine: Any, config_path: str = "", *, retriever: str = "null",
               knowledge_base_slots: int = 4096) -> AgaKnowledgeAdmin:
    """Build an AGA plugin (from ``config_path`` or defaults sized to the model),
    attach it to ``engine`` and return its admin API.

    ``retriever="kvstore"`` (``aga.retriever`` of the server config) gives the plugin
    a ``KVStoreRetriever`` over a knowledge base of ``knowledge_base_slots`` entries,
    where the admin API keeps registered knowledge.
    """
    from agentic_llm.aga import AGAConfig, AGAPlugin
    from agentic_llm.observability.events import get_default_bus

    source: Any = config_path or {"hidden_dim": int(engine.model_config.hidden_size)}
    config = AGAConfig.from_config(source)
    base = searcher = None
    if retriever == "kvstore":
        from agentic_llm.aga.retriever import KVStoreRetriever
        from agentic_llm.aga.store.kv_store import KVStore

        # host memory: the slots copy what is retrieved (clipping values as they do)
        base = KVStore(knowledge_base_slots, config.bottleneck_dim, config.hidden_dim)
        searcher = KVStoreRetriever(base, min_score=config.retriever_min_score)
        config = config.replace(retriever_backend="kvstore")
    elif config.retriever_backend == "kvstore":
        raise AgenticError(ErrorCode.INVALID_CONFIG,
                           "the AGA profile sets retriever.backend: kvstore; serve builds that "
                           "retriever's knowledge base when the server config sets "
                           "aga.retriever: kvstore", key="aga.retriever")
    # the process bus, which the serving pipeline and ``serve``'s metrics use too:
    # AGA's forward, retrieval, audit and store events reach /metrics
    plugin = AGAPlugin(config, retriever=searcher, event_bus=get_default_bus())
    plugin.attach(engine)
    return AgaKnowledgeAdmin(plugin, base)
