"""A small HTTP server for ``/metrics``, ``/health``, ``/livez`` and ``/readyz``.

It binds to loopback by default, port 0 picks a free port (read it back from
``server.port``), and it serves on a daemon thread so it never holds up shutdown.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from agentic_llm.errors import AgenticError, ErrorCode

if TYPE_CHECKING:
    from agentic_llm.observability.health import HealthRegistry, HealthReport
    from agentic_llm.observability.prometheus import PrometheusExporter

__all__ = ["ObservabilityHTTPServer"]


class ObservabilityHTTPServer:
    """Serves metrics and health on ``host:port``.

    Args:
        exporter: source of ``/metrics`` (404 there when None).
        health: source of the health endpoints (they report healthy when None).
        host: bind address; loopback unless you expose it on purpose.
        port: TCP port, 0 for any free one.
        health_path: path of the aggregate health endpoint.
    """

    def __init__(
        self,
        *,
        exporter: PrometheusExporter | None = None,
        health: HealthRegistry | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        health_path: str = "/health",
    ) -> None:
        self.exporter = exporter
        self.health = health
        self.health_path = health_path
        handler = _make_handler(self)
        try:
            self._httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise AgenticError(
                ErrorCode.RESOURCE_UNAVAILABLE,
                f"cannot listen on {host}:{port} for metrics/health: {exc}; "
                "choose another http_port (0 picks a free one)",
            ) from exc
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> ObservabilityHTTPServer:
        """Serve on a daemon thread; idempotent."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.5},
                name="observability-http", daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()

    # -- request handling ---------------------------------------------------------
    def handle(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of ``path``."""
        route = path.split("?", 1)[0]
        if route == "/metrics":
            if self.exporter is None:
                return 404, "text/plain", b"metrics are disabled\n"
            from agentic_llm.observability.prometheus import CONTENT_TYPE

            return 200, CONTENT_TYPE, self.exporter.exposition()
        if route in (self.health_path, "/health"):
            return self._report(self.health.check() if self.health else None)
        if route == "/livez":
            return self._report(self.health.liveness() if self.health else None)
        if route == "/readyz":
            return self._report(self.health.readiness() if self.health else None)
        return 404, "text/plain", b"not found; try /metrics, /health, /livez, /readyz\n"

    @staticmethod
    def _report(report: HealthReport | None) -> tuple[int, str, bytes]:
        body: dict[str, Any] = (
            report.to_dict() if report is not None else {"status": "healthy", "checks": {}}
        )
        code = 200 if report is None or report.ok else 503
        return code, "application/json", json.dumps(body, default=str).encode()


def _make_handler(server: ObservabilityHTTPServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            try:
                code, ctype, body = server.handle(self.path)
            except Exception as exc:  # noqa: BLE001 - answer 500, keep serving
                code, ctype, body = 500, "text/plain", f"{type(exc).__name__}: {exc}\n".encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            # Scrapes every few seconds would flood stderr.
            return

    return Handler
