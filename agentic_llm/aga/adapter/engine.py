"""EngineAdapter: the engine's ``HookPoint.ATTN_OUTPUT`` decoder hook.

The engine packs every token of the step into one ``[T, hidden]`` tensor and passes a
HookContext with ``token_rows``, ``prev_entropy`` (per row), ``namespaces`` (per row)
and ``is_last_token``; the step state lives in ``ctx.extras`` so concurrent engines
never share it.
"""

from __future__ import annotations

from typing import Any

import torch

from agentic_llm.aga.adapter.base import LLMAdapter, NamespaceProvider
from agentic_llm.aga.runtime.injection import InjectionRuntime
from agentic_llm.engine.hooks import HookContext, HookPoint, HookRegistry

__all__ = ["EngineAdapter", "find_registry"]

_STATE_KEY = "aga.step"


def find_registry(target: Any) -> HookRegistry | None:
    """The HookRegistry of a registry, an engine model (``.hooks``) or an engine (``.model.hooks``)."""
    for obj in (target, getattr(target, "hooks", None),
                getattr(getattr(target, "model", None), "hooks", None)):
        if isinstance(obj, HookRegistry):
            return obj
    return None


def _module_of(target: Any) -> torch.nn.Module | None:
    for obj in (target, getattr(target, "model", None)):
        if isinstance(obj, torch.nn.Module):
            return obj
    return None


class EngineAdapter(LLMAdapter):
    """Registers one hook on the engine's HookRegistry."""

    def __init__(self) -> None:
        self._registry: HookRegistry | None = None
        self._hook: Any = None

    def num_layers(self, model: Any) -> int:
        reg = find_registry(model)
        return reg.num_layers if reg is not None else 0

    def device_and_dtype(self, model: Any) -> tuple[torch.device, torch.dtype] | None:
        module = _module_of(model)
        if module is None:
            return None
        p = next(module.parameters(), None)
        return (p.device, p.dtype) if p is not None else None

    def attach(self, model: Any, runtime: InjectionRuntime, namespaces: NamespaceProvider) -> None:
        reg = find_registry(model)
        if reg is None:
            raise ValueError("no HookRegistry found")
        from agentic_llm.aga.types import DEFAULT_NAMESPACE
        from agentic_llm.tenancy import scope_rows

        def aga_hook(point: HookPoint, layer_idx: int, hidden: torch.Tensor,
                     ctx: HookContext) -> torch.Tensor:
            if runtime.is_suppressed():
                return hidden
            try:
                state = ctx.extras.get(_STATE_KEY)
                if state is None:
                    state = runtime.begin_step(
                        token_rows=ctx.token_rows, num_rows=ctx.num_rows,
                        # every row reads only its own tenant's namespaces
                        row_namespaces=scope_rows(ctx.namespaces or [()] * ctx.num_rows,
                                                  ctx.tenants or (), DEFAULT_NAMESPACE),
                        prev_entropy=ctx.prev_entropy,
                        is_last_token=ctx.is_last_token, request_ids=ctx.request_ids)
                    ctx.extras[_STATE_KEY] = state
            except Exception:  # noqa: BLE001 - fail-open
                if not runtime.absorb_setup_failure():
                    raise
                return hidden
            return runtime.run_layer(layer_idx, hidden, state)  # type: ignore[arg-type]

        reg.add(HookPoint.ATTN_OUTPUT, list(runtime.layers), aga_hook)
        self._registry, self._hook = reg, aga_hook

    def detach(self) -> None:
        if self._registry is not None and self._hook is not None:
            self._registry.remove(self._hook)
        self._registry, self._hook = None, None
