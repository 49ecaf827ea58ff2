"""Events, forward metrics and the audit trail."""

from agentic_llm.aga.instrumentation.audit_log import AuditEntry, AuditLog
from agentic_llm.aga.instrumentation.event_bus import EventBus, emit_event, resolve_bus
from agentic_llm.aga.instrumentation.forward_metrics import ForwardMetrics

__all__ = ["AuditEntry", "AuditLog", "EventBus", "ForwardMetrics", "emit_event", "resolve_bus"]
