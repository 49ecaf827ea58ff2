"""Every refusal reaches the client as a gRPC status with the ERR_* code in the
rich error details (google.rpc.ErrorInfo), never a bare INTERNAL."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from agentic_llm.client import Client, ServiceError
from agentic_llm.client.protos import load
from agentic_llm.errors import ErrorCode
from tests.server.conftest import LONG_REQUEST, REQUEST

pb = load().pb2


def _raw_error(server: Any, msg: Any, **kw: Any) -> grpc.RpcError:
    with grpc.insecure_channel(server.address) as ch:
        stub = load().pb2_grpc.AgenticLLMStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.GenerateSubgraph(msg, timeout=30, **kw)
    return info.value


def _error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no rich status details"
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status details")


def _refusal(client: Client, req: dict[str, Any]) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        client.generate_subgraph(req)
    return info.value


def test_bad_request_field_is_invalid_argument_with_field_violation(server: Any) -> None:
    msg = pb.GenerateSubgraphRequest(target_path="/dynamic/x", prompt="p")
    msg.sampling.top_p = 2.0
    err = _raw_error(server, msg)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = _error_info(err)
    assert info.reason == "ERR_INVALID_REQUEST" and info.domain == "agentic-llm"
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
    assert bad.field_violations[0].field == "sampling.top_p"


def test_missing_prompt_is_invalid_argument(server: Any) -> None:
    err = _raw_error(server, pb.GenerateSubgraphRequest(target_path="/dynamic/x"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(err).reason == "ERR_INVALID_REQUEST"


def test_plan_refusal_is_invalid_argument(client: Client) -> None:
    exc = _refusal(client, dict(REQUEST, target_path="/lib/math/x"))
    assert exc.code == ErrorCode.NAMESPACE_VIOLATION
    assert exc.status == grpc.StatusCode.INVALID_ARGUMENT


def test_budget_is_resource_exhausted(client: Client) -> None:
    exc = _refusal(client, dict(REQUEST, budget={"max_tokens": 8}))
    assert exc.code == ErrorCode.BUDGET_EXCEEDED
    assert exc.status == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_unknown_enum_value_is_invalid_argument(server: Any) -> None:
    msg = pb.GenerateSubgraphRequest(target_path="/dynamic/x", prompt="p")
    msg.flags.cache_policy = 99  # type: ignore[assignment]  # a value from a newer client
    err = _raw_error(server, msg)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = _error_info(err)
    assert info.reason == "ERR_INVALID_REQUEST" and info.metadata["field"] == "flags.cache_policy"


def test_server_timeout_is_deadline_exceeded(client: Client) -> None:
    exc = _refusal(client, dict(LONG_REQUEST, target_path="/dynamic/slow", budget={
        "max_nodes": 8, "max_tokens": 1200, "timeout_sec": 0.3}))
    assert exc.code == ErrorCode.TIMEOUT
    assert exc.status == grpc.StatusCode.DEADLINE_EXCEEDED


def test_client_deadline_propagates(client: Client, server: Any) -> None:
    with pytest.raises(ServiceError) as info:
        client.generate_subgraph(dict(LONG_REQUEST, target_path="/dynamic/slow2"), timeout=0.3)
    assert info.value.status == grpc.StatusCode.DEADLINE_EXCEEDED
    # The server stopped the request too: its slot is free again shortly after.
    import time

    end = time.monotonic() + 10
    while server.pipeline.admission.stats().running and time.monotonic() < end:
        time.sleep(0.02)
    assert server.pipeline.admission.stats().running == 0


def test_overload_is_resource_exhausted(make_server: Any) -> None:
    srv = make_server(**{"limits.max_concurrent": 1, "limits.max_queue": 0})
    with Client(srv.address, timeout=60) as c:
        started = threading.Event()
        holder: dict[str, Any] = {}

        def long_call() -> None:
            stream = c.stream(dict(LONG_REQUEST, target_path="/dynamic/hold"), tokens=True)
            next(stream)
            started.set()
            holder["rest"] = list(stream)

        t = threading.Thread(target=long_call)
        t.start()
        assert started.wait(30)
        exc = _refusal(c, dict(REQUEST, target_path="/dynamic/over"))
        t.join(60)
        assert exc.code == ErrorCode.OVERLOADED
        assert exc.status == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert holder["rest"][-1].valid  # the admitted request was not disturbed


def test_knowledge_without_aga_is_failed_precondition(client: Client) -> None:
    with pytest.raises(ServiceError) as info:
        client.list_knowledge(tenant="t")
    assert info.value.code == ErrorCode.RESOURCE_UNAVAILABLE
    assert info.value.status == grpc.StatusCode.FAILED_PRECONDITION


def test_invalidate_needs_a_filter(client: Client) -> None:
    with pytest.raises(ServiceError) as info:
        client.invalidate_cache()
    assert info.value.status == grpc.StatusCode.INVALID_ARGUMENT


def test_every_code_maps_to_a_documented_status() -> None:
    from agentic_llm.errors import AgenticError
    from agentic_llm.server.errors import grpc_code_for, to_rpc_status

    allowed = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
               grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE,
               grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAUTHENTICATED,
               grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
               grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED}
    for code in ErrorCode:
        assert grpc_code_for(code) in allowed
        status = to_rpc_status(AgenticError(code, "m"))
        assert status.details and status.message.startswith(code.value)
    assert grpc_code_for(ErrorCode.UNAVAILABLE) == grpc.StatusCode.UNAVAILABLE
    assert grpc_code_for(ErrorCode.OVERLOADED) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grpc_code_for(ErrorCode.TIMEOUT) == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_long_document_closes_within_max_tokens(client: Client) -> None:
    # The long random document needs ~740 tokens; with 150 the grammar closes it in
    # time (grammar.budget): a valid document, never a budget error mid-way.
    req = dict(LONG_REQUEST, target_path="/dynamic/cut", budget={
        "max_nodes": 8, "max_tokens": 150, "timeout_sec": 60})
    res = client.generate_subgraph(req)
    assert res.valid, res.diagnostics
    assert 0 < res.counts.completion_tokens <= 150


def test_too_small_a_budget_is_refused_before_generation(client: Client) -> None:
    # the planner's estimate lets 45 tokens through; the smallest document takes more
    req = dict(LONG_REQUEST, target_path="/dynamic/cut_small", budget={
        "max_nodes": 8, "max_tokens": 45, "timeout_sec": 60})
    exc = _refusal(client, req)
    assert exc.code == ErrorCode.BUDGET_EXCEEDED
    assert exc.status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert exc.details["max_tokens"] == "45" and int(exc.details["min_tokens"]) > 45
