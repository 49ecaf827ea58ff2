"""grpc.health.v1 and server reflection."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from agentic_llm.client.protos import SERVICE_NAME


def test_health_reports_serving(server: Any, client: Any) -> None:
    assert client.health() == "SERVING"
    assert client.health("") == "SERVING"
    with grpc.insecure_channel(server.address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        resp = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_health_not_serving_while_draining(make_server: Any) -> None:
    srv = make_server()
    with grpc.insecure_channel(srv.address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        srv.health.enter_graceful_shutdown()
        resp = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_reflection_lists_and_describes_the_service(server: Any) -> None:
    with grpc.insecure_channel(server.address) as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        services = db.get_services()
        assert SERVICE_NAME in services
        assert "grpc.health.v1.Health" in services
        pool = descriptor_pool.DescriptorPool(db)
        svc = pool.FindServiceByName(SERVICE_NAME)
        methods = {m.name for m in svc.methods}
        assert {"GenerateSubgraph", "GenerateSubgraphStream", "GenerateFork", "CacheStats",
                "InvalidateCache", "RegisterKnowledge", "RemoveKnowledge",
                "ListKnowledge"} <= methods
        stream = svc.FindMethodByName("GenerateSubgraphStream")
        assert stream.server_streaming and not stream.client_streaming
        req = pool.FindMessageTypeByName("agentic_llm.agentic.v1.GenerateSubgraphRequest")
        assert "target_path" in req.fields_by_name


def test_reflection_can_be_turned_off(make_server: Any) -> None:
    srv = make_server(reflection=False)
    with grpc.insecure_channel(srv.address) as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        try:
            db.get_services()
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNIMPLEMENTED
        else:
            raise AssertionError("reflection answered although it is off")


def test_health_follows_the_engine_loop_checks(server: Any) -> None:
    report = server._health_adapter.refresh()
    assert report.ok and "engine_loop" in report.checks
    assert report.checks["engine_loop"].status == "healthy"
    # A check that fails turns the service NOT_SERVING at the next refresh.
    server.health_checks.register("probe", lambda: False)
    server._health_adapter.refresh()
    with grpc.insecure_channel(server.address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        resp = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
        server.health_checks.unregister("probe")
        server._health_adapter.refresh()
        resp = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
