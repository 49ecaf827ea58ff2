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
    """

    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin

    def register(self, *, tenant: str, namespace: str, key: str, text: str,
                 metadata: Mapping[str, str], entry_id: str | None,
                 key_vector: Sequence[float] = (), value_vector: Sequence[float] = (),
                 reliability: float = 1.0) -> str:
        ns = scoped_namespace(tenant, namespace)
        kid = entry_id or uuid.uuid4().hex[:16]
        meta = {**dict(metadata), "key": key, "text": text, "tenant": tenant}
        actor = tenant or "admin"
        if key_vector or value_vector:
            if not (key_vector and value_vector):
                raise AgenticError(ErrorCode.INVALID_REQUEST,
                                   "give both key_vector and value_vector, or neither",
                                   field="entry.value_vector" if key_vector else "entry.key_vector")
            import torch

            self.plugin.register(kid, torch.tensor(list(key_vector), dtype=torch.float32),
                                 torch.tensor(list(value_vector), dtype=torch.float32),
                                 reliability=reliability, metadata=meta, namespace=ns, actor=actor)
        else:
            if not key or not text:
                raise AgenticError(ErrorCode.INVALID_REQUEST,
                                   "a knowledge entry needs key and text, or both vectors",
                                   field="entry.key" if not key else "entry.text")
            self.plugin.register_text(kid, key, text, namespace=ns, metadata=meta, actor=actor,
                                      reliability=reliability)
        return kid

    def remove(self, *, tenant: str, namespace: str, entry_id: str) -> bool:
        return bool(self.plugin.remove(entry_id, scoped_namespace(tenant, namespace),
                                       actor=tenant or "admin"))

    def list(self, *, tenant: str, namespace: str) -> list[KnowledgeRecord]:
        wanted = scoped_namespace(tenant, namespace) if namespace else None
        out = []
        for rec in self.plugin.list_knowledge(wanted):
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


def attach_aga(engine: Any, config_path: str = "") -> AgaKnowledgeAdmin:
    """Build an AGA plugin (from ``config_path`` or defaults sized to the model),
    attach it to ``engine`` and return its admin API."""
    from agentic_llm.aga import AGAPlugin
    from agentic_llm.observability.events import get_default_bus

    source: Any = config_path or {"hidden_dim": int(engine.model_config.hidden_size)}
    # the process bus, which the serving pipeline and ``serve``'s metrics use too:
    # AGA's forward, retrieval, audit and store events reach /metrics
    plugin = AGAPlugin.from_config(source, event_bus=get_default_bus())
    plugin.attach(engine)
    return AgaKnowledgeAdmin(plugin)
