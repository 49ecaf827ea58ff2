"""Health registry aggregation, HTTP status codes, Kubernetes probes, gRPC mirror."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

from grpc_health.v1 import health_pb2

from agentic_llm.observability.health import (
    DEGRADED,
    HEALTHY,
    UNHEALTHY,
    CheckResult,
    GrpcHealthAdapter,
    HealthRegistry,
    Heartbeat,
    aga_store_check,
    heartbeat_check,
    kv_pool_check,
    store_reachable_check,
)
from agentic_llm.observability.httpserver import ObservabilityHTTPServer


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_aggregate_and_http_codes() -> None:
    reg = HealthRegistry(timeout_s=1.0)
    state = {"kv": {"pages_used": 1, "pages_free": 9}, "redis_up": True}
    hb = Heartbeat()
    reg.register("engine_loop", heartbeat_check(hb, stale_after_s=60), liveness=True)
    reg.register("kv_pool", kv_pool_check(lambda: state["kv"]))
    reg.register("cache_store", store_reachable_check(lambda: state["redis_up"]), critical=False)
    server = ObservabilityHTTPServer(health=reg).start()
    try:
        code, body = get(server.url + "/health")
        assert (code, body["status"]) == (200, HEALTHY)
        assert set(body["checks"]) == {"engine_loop", "kv_pool", "cache_store"}

        state["redis_up"] = False  # non-critical: degraded, still 200
        code, body = get(server.url + "/health")
        assert (code, body["status"]) == (200, DEGRADED)
        assert body["checks"]["cache_store"]["status"] == DEGRADED

        state["kv"] = {"pages_used": 0, "pages_free": 0}  # critical: 503
        code, body = get(server.url + "/health")
        assert (code, body["status"]) == (503, UNHEALTHY)
        # Liveness only looks at the engine loop: the process should not be restarted.
        code, body = get(server.url + "/livez")
        assert (code, body["status"]) == (200, HEALTHY)
        assert list(body["checks"]) == ["engine_loop"]
        code, _ = get(server.url + "/readyz")
        assert code == 503

        state["kv"] = {"pages_used": 1, "pages_free": 9}
        state["redis_up"] = True
        reg.set_ready(False)  # e.g. still loading the model
        assert get(server.url + "/readyz")[0] == 503
        assert get(server.url + "/livez")[0] == 200
        reg.set_ready(True)
        assert get(server.url + "/readyz")[0] == 200
        try:
            urllib.request.urlopen(server.url + "/metrics", timeout=5)
            status = 200
        except urllib.error.HTTPError as e:
            status = e.code
        assert status == 404  # no exporter configured
    finally:
        server.stop()
        reg.close()


def test_stale_heartbeat_and_dead_thread() -> None:
    hb = Heartbeat()
    hb.last -= 100
    assert heartbeat_check(hb, stale_after_s=30)().status == UNHEALTHY
    hb.beat()
    assert heartbeat_check(hb, stale_after_s=30)().status == HEALTHY
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    assert heartbeat_check(hb, thread=t)().status == UNHEALTHY


def test_hanging_or_raising_check_is_unhealthy_not_fatal() -> None:
    reg = HealthRegistry(timeout_s=0.2)
    release = threading.Event()
    reg.register("hangs", lambda: release.wait(5))
    reg.register("raises", lambda: 1 / 0)
    report = reg.check()
    release.set()
    assert report.status == UNHEALTHY
    assert "timed out" in report.checks["hangs"].detail
    assert "ZeroDivisionError" in report.checks["raises"].detail
    reg.close()


def test_kv_and_aga_thresholds() -> None:
    assert kv_pool_check(lambda: {"pages_used": 96, "pages_free": 4})().status == DEGRADED
    assert kv_pool_check(lambda: {"kv_pages_used": 1, "kv_pages_free": 4})().status == HEALTHY
    assert kv_pool_check(lambda: {})().status == UNHEALTHY
    assert aga_store_check(lambda: {"utilization": 0.99})().status == DEGRADED
    assert aga_store_check(lambda: {"utilization": float("nan")})().status == UNHEALTHY
    assert aga_store_check(lambda: {"has_nan": True})().status == UNHEALTHY
    assert aga_store_check(lambda: {"utilization": 0.2})().status == HEALTHY


def test_check_return_forms() -> None:
    reg = HealthRegistry()
    reg.register("bool", lambda: True)
    reg.register("str", lambda: "degraded")
    reg.register("obj", lambda: CheckResult(HEALTHY, "fine", {"x": 1}))
    r = reg.check()
    assert r.status == DEGRADED
    assert r.to_dict()["checks"]["obj"] == {"status": "healthy", "detail": "fine", "data": {"x": 1}}
    reg.unregister("str")
    assert reg.check().status == HEALTHY
    reg.close()


def test_grpc_health_reflects_registry() -> None:
    reg = HealthRegistry()
    up = {"ok": True}
    reg.register("kv_pool", lambda: up["ok"])
    adapter = GrpcHealthAdapter(reg, services=("agentic.v1.Generator",))
    req = health_pb2.HealthCheckRequest

    adapter.refresh()
    resp = adapter.servicer.Check(req(service="agentic.v1.Generator"), None)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    up["ok"] = False
    adapter.refresh()
    assert adapter.servicer.Check(req(service=""), None).status == \
        health_pb2.HealthCheckResponse.NOT_SERVING
    # The background refresher picks up the recovery by itself.
    adapter.interval_s = 0.05
    up["ok"] = True
    adapter.start()
    deadline = time.monotonic() + 5
    serving = health_pb2.HealthCheckResponse.SERVING
    while adapter.servicer.Check(req(service=""), None).status != serving:
        assert time.monotonic() < deadline, "gRPC health never returned to SERVING"
        time.sleep(0.02)
    adapter.stop()
    reg.close()


def test_grpc_health_over_a_real_channel() -> None:
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    reg = HealthRegistry()
    state = {"kv": {"blocks_used": 1, "blocks_free": 63}}
    reg.register("kv_pool", kv_pool_check(lambda: state["kv"]))
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    adapter = GrpcHealthAdapter(reg, servicer, services=("agentic.v1.AgenticLLM",))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            adapter.refresh()
            resp = stub.Check(health_pb2.HealthCheckRequest(service="agentic.v1.AgenticLLM"),
                              timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
            state["kv"] = {"blocks_used": 0, "blocks_free": 0}  # the pool is gone
            adapter.refresh()
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        server.stop(0)
        reg.close()
