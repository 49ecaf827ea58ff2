"""Structured logs: JSON or text formatters, a rotating file, and bus events as log lines.

:func:`configure_logging` applies the configured format and destinations to a logger
(the package's own ``agentic_llm`` logger by default). :class:`LogExporter` writes bus
events to the ``agentic_llm.events`` logger, one line per event, on its own thread so
disk I/O never touches the emitter. High-frequency kinds (engine steps, mask fills,
AGA forwards) log at DEBUG and are not even subscribed at a higher level.

:func:`log_request` writes the one INFO line per request that the gRPC servicer
emits (logger ``agentic_llm.requests``), and :func:`fields_line` renders the
``key=value`` text that this line and ``serve``'s start-up summary share.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import logging.handlers
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from agentic_llm.observability import kinds as K
from agentic_llm.observability.config import ObservabilityConfig
from agentic_llm.observability.events import Event, EventBus, Subscription

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "make_formatter",
    "build_handlers",
    "configure_logging",
    "LogExporter",
    "EVENT_LOG_LEVELS",
    "REQUEST_LOGGER",
    "fields_line",
    "log_request",
]

#: Log level of each event kind; kinds not listed log at INFO.
EVENT_LOG_LEVELS: dict[str, int] = {
    K.ENGINE_STEP: logging.DEBUG,
    K.GRAMMAR_MASK: logging.DEBUG,
    K.AGA_FORWARD: logging.DEBUG,
    K.AGA_RETRIEVAL: logging.DEBUG,
    K.PREFIX_CACHE_MATCH: logging.DEBUG,
    K.REQUEST_STAGE: logging.DEBUG,
    K.REQUEST_FIRST_TOKEN: logging.DEBUG,
    K.GRAMMAR_JUMP_FORWARD: logging.DEBUG,
    K.ALERT_FIRED: logging.WARNING,
}

#: The logger of the per-request lines.
REQUEST_LOGGER = "agentic_llm.requests"

_STD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat(timespec="milliseconds")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STD_ATTRS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then any extra fields.

    Fields passed with ``logger.info(msg, extra={...})`` (and event fields, for
    :class:`LogExporter` lines) appear as top-level keys.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in _extras(record).items():
            out.setdefault(k, v)
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger: message key=value ...`` for humans."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"{_iso(record.created)} {record.levelname:<8} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{k}={v!r}" for k, v in _extras(record).items())
        text = f"{head} {extras}" if extras else head
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def make_formatter(fmt: str) -> logging.Formatter:
    """The formatter for ``"json"`` or ``"text"``."""
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"log format must be 'json' or 'text', got {fmt!r}")


def build_handlers(config: ObservabilityConfig) -> list[logging.Handler]:
    """Handlers for ``config``: a size-rotated file and/or stderr, with its formatter."""
    handlers: list[logging.Handler] = []
    if config.log_file:
        handlers.append(logging.handlers.RotatingFileHandler(
            config.log_file, maxBytes=config.log_max_bytes,
            backupCount=config.log_backup_count, encoding="utf-8", delay=True,
        ))
    if config.log_to_stderr or not config.log_file:
        handlers.append(logging.StreamHandler(sys.stderr))
    formatter = make_formatter(config.log_format)
    for h in handlers:
        h.setFormatter(formatter)
    return handlers


def configure_logging(
    config: ObservabilityConfig, logger: str | logging.Logger = "agentic_llm",
) -> list[logging.Handler]:
    """Attach ``config``'s handlers to ``logger`` and set its level; returns the handlers.

    Call ``logger.removeHandler(h)`` / ``h.close()`` on the result to undo it.
    """
    log = logging.getLogger(logger) if isinstance(logger, str) else logger
    log.setLevel(config.log_level.upper())
    handlers = build_handlers(config)
    for h in handlers:
        log.addHandler(h)
    return handlers


class LogExporter:
    """Writes bus events as structured log lines.

    Args:
        bus: the bus to subscribe to.
        config: format, level, file, rotation and the kinds to log.
        logger_name: the logger written to (does not propagate to the root logger).
        handlers: use these instead of the ones ``config`` describes.
    """

    def __init__(
        self,
        bus: EventBus,
        config: ObservabilityConfig,
        *,
        logger_name: str = "agentic_llm.events",
        handlers: Iterable[logging.Handler] | None = None,
    ) -> None:
        self.bus = bus
        self.config = config
        self.level = logging.getLevelName(config.log_level.upper())
        self.logger = logging.getLogger(logger_name)
        self.logger.setLevel(self.level)
        self.logger.propagate = False
        self.handlers = list(handlers) if handlers is not None else build_handlers(config)
        self._sub: Subscription | None = None

    def _kinds(self) -> tuple[str, ...] | None:
        if self.config.log_kinds is not None:
            return self.config.log_kinds
        if self.level <= logging.DEBUG:
            return None
        return tuple(k for k in K.EVENT_SPECS if EVENT_LOG_LEVELS.get(k, logging.INFO) >= self.level)

    def start(self) -> LogExporter:
        """Attach the handlers and subscribe (threaded: the file write is off the emitter)."""
        if self._sub is None:
            for h in self.handlers:
                self.logger.addHandler(h)
            self._sub = self.bus.subscribe(
                self.write, kinds=self._kinds(), threaded=True,
                queue_size=self.config.queue_size, name="log-exporter",
            )
        return self

    def write(self, event: Event) -> None:
        """Log one event (the subscription calls this)."""
        level = EVENT_LOG_LEVELS.get(event.kind, logging.INFO)
        if event.kind == K.REQUEST_FINISHED and event.fields.get("outcome") in ("error", "timeout"):
            level = logging.WARNING
        if not self.logger.isEnabledFor(level):
            return
        extra = _safe_extra(event.fields)
        extra["event"] = event.kind
        extra["seq"] = event.seq
        self.logger.log(level, event.kind, extra=extra)

    def stop(self) -> None:
        """Unsubscribe, flush and close the handlers."""
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        for h in self.handlers:
            self.logger.removeHandler(h)
            h.close()


def _safe_extra(fields: Mapping[str, Any]) -> dict[str, Any]:
    # LogRecord refuses extras that shadow its own attributes (e.g. "message").
    return {(f"f_{k}" if k in _STD_ATTRS else k): v for k, v in fields.items()}


def _field_text(value: Any) -> str:
    if isinstance(value, float):
        value = round(value, 1)
    text = str(value) if value != "" else "-"
    return json.dumps(text) if any(c in text for c in ' "=\n') else text


def fields_line(head: str, fields: Mapping[str, Any]) -> str:
    """``head key=value ...``, values holding spaces, quotes or ``=`` JSON-quoted."""
    return " ".join([head, *(f"{k}={_field_text(v)}" for k, v in fields.items())])


def log_request(fields: Mapping[str, Any], *, level: int = logging.INFO) -> None:
    """One line for a finished or refused request: the fields as ``key=value`` text
    and, for the JSON formatter, as top-level keys."""
    logger = logging.getLogger(REQUEST_LOGGER)
    if logger.isEnabledFor(level):
        logger.log(level, fields_line("request", fields), extra=_safe_extra(fields))
