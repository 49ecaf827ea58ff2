"""InjectionRuntime: the body every hooked layer runs, with fail-open and timing.

Adapters (Hugging Face forward hooks, the engine's HookRegistry) translate their
calling convention into ``begin_step`` (once per forward, at the first hooked layer)
and ``run_layer`` (each hooked layer, on a packed ``[T, hidden]`` tensor).

Fail-open: an exception anywhere in the injection, or a layer call that takes longer
than ``max_forward_timeout_ms``, returns the hidden states unchanged and is counted
(``ForwardMetrics.errors`` / ``.timeouts``). The time is host wall time: on a GPU it
measures launch cost, not kernel time.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from agentic_llm.aga.config import AGAConfig
from agentic_llm.aga.gate.decay import PersistenceDecay
from agentic_llm.aga.gate.entropy_gate import EntropyGateSystem
from agentic_llm.aga.instrumentation.forward_metrics import ForwardMetrics, ForwardSample
from agentic_llm.aga.operator.bottleneck_injector import BottleneckInjector
from agentic_llm.aga.runtime.step import StepRecord, StepState
from agentic_llm.aga.store.kv_store import KVStore
from agentic_llm.aga.types import DEFAULT_NAMESPACE
from agentic_llm.observability.events import EventBus
from agentic_llm.observability.kinds import AGA_FORWARD

if TYPE_CHECKING:
    from agentic_llm.aga.retriever.governance import GovernedRetrieval
    from agentic_llm.aga.streaming import StreamingSession

__all__ = ["InjectionRuntime"]

_log = logging.getLogger(__name__)


class InjectionRuntime:
    """Shared state of an attached plugin: store, gates, injector, metrics, sessions."""

    def __init__(
        self,
        config: AGAConfig,
        store: KVStore,
        injector: BottleneckInjector,
        bus: EventBus,
        metrics: ForwardMetrics,
        retrieval: GovernedRetrieval | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.injector = injector
        self.gates = EntropyGateSystem(config)
        self.decay = PersistenceDecay(config)
        self.bus = bus
        self.metrics = metrics
        self.retrieval = retrieval
        self.layers: tuple[int, ...] = ()
        self.first_layer = 0
        self.enabled = True
        self._local = threading.local()
        self._step_counter = 0
        self._counter_lock = threading.Lock()
        self.records: deque[StepRecord] = deque(maxlen=config.streaming_diagnostics_buffer_size)
        self._sessions: weakref.WeakSet[StreamingSession] = weakref.WeakSet()
        #: test seam: called at the start of every layer's injection (fault injection)
        self.fault_hook: Callable[[int], None] | None = None

    # -- setup -------------------------------------------------------------------
    def set_layers(self, layers: Sequence[int]) -> None:
        """The resolved (non-negative, sorted) hooked layer indices."""
        self.layers = tuple(sorted(set(layers)))
        self.first_layer = self.layers[0]

    def add_session(self, session: StreamingSession) -> None:
        """Feed this session every step record from now on."""
        self._sessions.add(session)

    @contextlib.contextmanager
    def suppressed(self) -> Iterator[None]:
        """No injection on this thread inside the block (used while encoding knowledge)."""
        self._local.suppressed = True
        try:
            yield
        finally:
            self._local.suppressed = False

    def is_suppressed(self) -> bool:
        """Whether injection is off on this thread (plugin disabled or inside ``suppressed``)."""
        return not self.enabled or getattr(self._local, "suppressed", False)

    # -- per step ------------------------------------------------------------------
    def begin_step(
        self,
        *,
        token_rows: torch.Tensor,
        num_rows: int,
        row_namespaces: Sequence[Sequence[str]] | None,
        prev_entropy: torch.Tensor | None,
        is_last_token: torch.Tensor | None,
        request_ids: Sequence[str] = (),
    ) -> StepState:
        """Prepare the state every hooked layer of this forward step shares."""
        with self._counter_lock:
            self._step_counter += 1
            step = self._step_counter
        self.store.tick()
        rows = self._normalize_namespaces(row_namespaces, num_rows)
        device = token_rows.device
        record = StepRecord(step, num_rows, token_rows, is_last_token, list(request_ids))
        state = StepState(record, token_rows, rows, None, None,
                          self.decay.begin(token_rows.shape[0], device), -1)
        self._refresh_visibility(state)
        if not self.gates.per_layer:
            unc = self.gates.uncertainty_from_rows(prev_entropy, token_rows,
                                                   token_rows.shape[0], device)
            record.uncertainty = unc
            state.gate_base = self.gates.finalize(self.gates.gate1(unc))
        self.records.append(record)
        for session in list(self._sessions):
            session.record_step(record)
        self._local.state = state
        return state

    def current_state(self) -> StepState | None:
        """This thread's state of the step in progress (Hugging Face adapter)."""
        return getattr(self._local, "state", None)

    def _normalize_namespaces(
        self, row_namespaces: Sequence[Sequence[str]] | None, num_rows: int
    ) -> tuple[tuple[str, ...], ...]:
        if not self.config.gate0_enabled:
            every = tuple(self.store.namespaces())
            return tuple(every for _ in range(num_rows))
        out = []
        for r in range(num_rows):
            ns = row_namespaces[r] if row_namespaces is not None and r < len(row_namespaces) else ()
            out.append(tuple(ns) if ns else (DEFAULT_NAMESPACE,))
        return tuple(out)

    def _refresh_visibility(self, state: StepState) -> None:
        store = self.store
        state.store_version = store.version
        names = {ns for row in state.row_namespaces for ns in row}
        if store.visible_count(names) == 0:
            state.invisible = None
            state.record.knowledge_visible = False
            return
        state.invisible = ~store.visibility(state.row_namespaces)[state.token_rows]
        state.record.knowledge_visible = True

    def absorb_setup_failure(self) -> bool:
        """For an adapter hook's ``except`` block around a step's setup: with
        ``fail_open``, count and log the error and return True (the hook passes the
        hidden states through unchanged); otherwise return False (the hook re-raises)."""
        if not self.config.fail_open:
            return False
        self.metrics.count_error()
        _log.debug("AGA step setup failed open", exc_info=True)
        return True

    # -- per layer ---------------------------------------------------------------------
    def run_layer(self, layer: int, hidden: torch.Tensor, state: StepState) -> torch.Tensor:
        """Inject into packed ``hidden`` ``[T, H]`` of ``layer``; fail-open."""
        if not self.enabled or getattr(self._local, "suppressed", False):
            return hidden
        t0 = time.perf_counter()
        try:
            if self.fault_hook is not None:
                self.fault_hook(layer)
            out, gate = self._inject(layer, hidden, state)
        except Exception as exc:  # noqa: BLE001 - fail-open is the contract
            if not self.config.fail_open:
                raise
            self.metrics.count_error()
            state.record.failed += 1
            _log.debug("AGA layer %d failed open: %s", layer, exc)
            self._emit_forward(layer, False, (time.perf_counter() - t0) * 1e6, None, state)
            return hidden
        latency_us = (time.perf_counter() - t0) * 1e6
        state.record.latency_us += latency_us
        if latency_us > self.config.max_forward_timeout_ms * 1000.0:
            self.metrics.count_timeout()
            state.record.failed += 1
            self._emit_forward(layer, False, latency_us, None, state)
            return hidden
        if gate is None:
            self.metrics.count_skip()
            return out
        state.record.layer_gates.append((layer, gate))
        self.metrics.record(ForwardSample(layer, latency_us, gate, state.record.uncertainty))
        self._emit_forward(layer, True, latency_us, gate, state)
        return out

    def _inject(
        self, layer: int, hidden: torch.Tensor, state: StepState
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.retrieval is not None and layer == self.first_layer and not state.retrieval_done:
            state.retrieval_done = True
            if self.retrieval.maybe_retrieve(self, hidden, state):
                self._refresh_visibility(state)
        elif state.store_version != self.store.version and state.invisible is not None:
            # Knowledge removed mid-step must not be routed to by later layers.
            self._refresh_visibility(state)
        if state.invisible is None:
            zero = torch.zeros(hidden.shape[0], device=hidden.device, dtype=torch.float32)
            state.record.layer_gates.append((layer, zero))
            return hidden, None
        first = layer == self.first_layer
        if self.gates.per_layer:
            unc = self.gates.hidden_variance(hidden)
            state.record.uncertainty = unc
            gate = self.gates.gate1(unc)
            if not first:
                gate = gate * self.decay.factor(state.decay)
            gate = self.gates.finalize(gate)
        else:
            base = state.gate_base
            if base is None:
                raise RuntimeError("step state has no Gate-1 value")
            # Nothing decayed yet at the first hooked layer: skip the no-op factor.
            gate = base if first else self.gates.finalize(base * self.decay.factor(state.decay))
        result = self.injector.inject(hidden, self.store.get_active(), state.invisible, gate,
                                      track_usage=first)
        if layer != self.layers[-1]:
            self.decay.update(state.decay, result.gate)
        return result.hidden, result.gate

    def _emit_forward(self, layer: int, applied: bool, latency_us: float,
                      gate: torch.Tensor | None, state: StepState) -> None:
        if not self.bus.wants(AGA_FORWARD):
            return
        # A subscriber asked for numbers: this is the only place the hot path syncs.
        gate_value = float(gate.float().mean()) if gate is not None and gate.numel() else None
        unc = state.record.uncertainty
        entropy = float(unc.float().mean()) if unc is not None and unc.numel() else None
        any_applied = applied and gate is not None and bool((gate > 0).any())
        self.bus.emit(AGA_FORWARD, layer=layer, applied=any_applied, latency_us=latency_us,
                      gate_value=gate_value, entropy=entropy)

    def last_record(self) -> StepRecord | None:
        """The most recent step's record."""
        return self.records[-1] if self.records else None

    def diagnostics(self) -> dict[str, Any]:
        """Step counter and recent-step numbers for ``get_diagnostics``."""
        last = self.last_record()
        return {"steps": self._step_counter,
                "last_step": last.to_diagnostics() if last is not None else None}
