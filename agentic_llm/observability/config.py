"""Typed, validated configuration of the observability stack.

Every field has a safe default: nothing listens on a non-loopback address, nothing
is written to disk, tracing is off. Load from a dict or a YAML file with
:meth:`ObservabilityConfig.from_dict` / :meth:`ObservabilityConfig.from_yaml`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["AlertRuleConfig", "ObservabilityConfig", "REQUEST_LABEL_CHOICES", "OPERATORS"]

#: Request attributes that may become labels of ``agentic_requests_total`` (opt-in).
REQUEST_LABEL_CHOICES: tuple[str, ...] = ("tenant", "target_path")
OPERATORS: tuple[str, ...] = (">", ">=", "<", "<=", "==", "!=")
_SEVERITIES = ("info", "warning", "critical")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _bad(msg: str) -> AgenticError:
    return AgenticError(ErrorCode.INVALID_CONFIG, msg)


@dataclass(frozen=True)
class AlertRuleConfig:
    """One alert rule: fire when ``signal operator threshold`` holds.

    ``metric`` names a signal computed over the recent event window (see
    ``alerts.SIGNALS``); ``message`` may use ``{value}``, ``{threshold}``, ``{rule}``.
    """

    name: str
    metric: str
    operator: str
    threshold: float
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str = "{rule}: {value:.4g} (threshold {threshold:.4g})"
    cooldown_s: float = 300.0

    def __post_init__(self) -> None:
        from agentic_llm.observability.alerts import SIGNALS  # circular at import time

        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise _bad(f"alert rule name {self.name!r} must be letters, digits, _ or -")
        if self.metric not in SIGNALS:
            raise _bad(f"alert rule {self.name}: unknown metric {self.metric!r}; "
                       f"choose one of {sorted(SIGNALS)}")
        if self.operator not in OPERATORS:
            raise _bad(f"alert rule {self.name}: operator must be one of {OPERATORS}")
        if self.severity not in _SEVERITIES:
            raise _bad(f"alert rule {self.name}: severity must be one of {_SEVERITIES}")
        if self.cooldown_s < 0:
            raise _bad(f"alert rule {self.name}: cooldown_s must be >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertRuleConfig:
        """Build from a mapping with the field names as keys."""
        return _build(cls, data, f"alert rule {data.get('name', '?')}")


@dataclass(frozen=True)
class ObservabilityConfig:
    """Everything the :class:`~agentic_llm.observability.stack.ObservabilityStack` runs."""

    enabled: bool = True
    # -- HTTP server: /metrics, /health, /livez, /readyz --
    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = 0  # 0: pick a free port
    health_path: str = "/health"
    # -- Prometheus --
    prometheus_enabled: bool = True
    prometheus_labels: Mapping[str, str] = field(default_factory=dict)
    request_labels: tuple[str, ...] = ()
    max_label_values: int = 100
    # -- structured event logs --
    log_enabled: bool = False
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    log_file: str | None = None
    log_max_bytes: int = 100 * 1024 * 1024
    log_backup_count: int = 5
    log_to_stderr: bool = False
    log_kinds: tuple[str, ...] | None = None  # None: every kind
    # -- audit storage --
    audit_enabled: bool = False
    audit_storage_backend: Literal["memory", "file", "sqlite"] = "memory"
    audit_storage_path: str | None = None
    audit_retention_days: float | None = 90.0
    audit_max_records: int | None = None
    audit_flush_interval: float = 10.0
    audit_batch_size: int = 100
    # -- alerts --
    alert_enabled: bool = False
    alert_default_rules: bool = True
    alert_rules: tuple[AlertRuleConfig, ...] = ()
    alert_webhook_url: str | None = None
    alert_webhook_timeout_s: float = 5.0
    alert_log: bool = True
    alert_window_s: float = 60.0
    alert_eval_interval_s: float = 5.0
    # -- tracing --
    tracing_exporter: Literal["console", "otlp", "memory"] | None = None
    tracing_service_name: str = "agentic-llm"
    tracing_endpoint: str | None = None
    # -- bus --
    queue_size: int = 10_000

    def __post_init__(self) -> None:
        if not 0 <= self.http_port <= 65535:
            raise _bad(f"http_port must be 0..65535, got {self.http_port}")
        if not self.health_path.startswith("/"):
            raise _bad(f"health_path must start with '/', got {self.health_path!r}")
        bad_labels = [x for x in self.request_labels if x not in REQUEST_LABEL_CHOICES]
        if bad_labels:
            raise _bad(f"request_labels {bad_labels} not allowed; choose from {REQUEST_LABEL_CHOICES}")
        for k in self.prometheus_labels:
            if not k.isidentifier() or k.startswith("__"):
                raise _bad(f"prometheus_labels key {k!r} is not a valid label name")
        if self.max_label_values < 1:
            raise _bad("max_label_values must be >= 1")
        if self.log_format not in ("json", "text"):
            raise _bad(f"log_format must be 'json' or 'text', got {self.log_format!r}")
        if self.log_level.upper() not in _LOG_LEVELS:
            raise _bad(f"log_level must be one of {_LOG_LEVELS}, got {self.log_level!r}")
        if self.log_max_bytes < 0 or self.log_backup_count < 0:
            raise _bad("log_max_bytes and log_backup_count must be >= 0")
        if self.audit_storage_backend not in ("memory", "file", "sqlite"):
            raise _bad("audit_storage_backend must be 'memory', 'file' or 'sqlite'")
        if (self.audit_enabled and self.audit_storage_backend != "memory"
                and not self.audit_storage_path):
            raise _bad(f"audit_storage_path is required for the {self.audit_storage_backend} backend")
        if self.audit_retention_days is not None and self.audit_retention_days <= 0:
            raise _bad("audit_retention_days must be > 0 (or None to keep everything)")
        if self.audit_max_records is not None and self.audit_max_records < 1:
            raise _bad("audit_max_records must be >= 1 (or None)")
        if self.audit_flush_interval <= 0 or self.audit_batch_size < 1:
            raise _bad("audit_flush_interval must be > 0 and audit_batch_size >= 1")
        if self.alert_webhook_url is not None and not self.alert_webhook_url.startswith(
            ("http://", "https://")
        ):
            raise _bad(f"alert_webhook_url must be an http(s) URL, got {self.alert_webhook_url!r}")
        if self.alert_window_s <= 0 or self.alert_eval_interval_s <= 0:
            raise _bad("alert_window_s and alert_eval_interval_s must be > 0")
        names = [r.name for r in self.alert_rules]
        if len(set(names)) != len(names):
            raise _bad(f"alert rule names must be unique: {names}")
        if self.tracing_exporter not in (None, "console", "otlp", "memory"):
            raise _bad("tracing_exporter must be None, 'console', 'otlp' or 'memory'")
        if self.queue_size < 1:
            raise _bad("queue_size must be >= 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObservabilityConfig:
        """Build from a mapping (e.g. parsed YAML); unknown keys are an error."""
        data = dict(data)
        rules = data.pop("alert_rules", ())
        data["alert_rules"] = tuple(
            r if isinstance(r, AlertRuleConfig) else AlertRuleConfig.from_dict(r) for r in rules
        )
        for key in ("request_labels", "log_kinds"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return _build(cls, data, "observability config")

    @classmethod
    def from_yaml(cls, path: str | Path) -> ObservabilityConfig:
        """Load from a YAML file; an ``observability:`` top-level key is optional."""
        import yaml

        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise _bad(f"cannot read observability config {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise _bad(f"{path}: expected a mapping at the top level")
        return cls.from_dict(loaded.get("observability", loaded))

    def replace(self, **changes: Any) -> ObservabilityConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


def _build(cls: Any, data: Mapping[str, Any], what: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _bad(f"{what}: unknown keys {unknown}; known keys are {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise _bad(f"{what}: {exc}") from exc
