"""Faults: malformed protos, oversized messages, a client that never reads its
stream, SIGTERM under load. None of them may take the server down."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import grpc
import pytest

from agentic_llm.client import Client, RetryPolicy, ServiceError
from agentic_llm.client.protos import SERVICE_NAME, load
from agentic_llm.errors import ErrorCode
from agentic_llm.serving import ServingResult, TokenDelta
from tests.server.conftest import LONG_REQUEST, MULTI_NODE_REQUEST, REQUEST

pb = load().pb2


def _raw_call(address: str, method: str, payload: bytes, *, streaming: bool = False) -> grpc.RpcError:
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", -1)]) as ch:
        path = f"/{SERVICE_NAME}/{method}"
        make = ch.unary_stream if streaming else ch.unary_unary
        call = make(path, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            out = call(payload, timeout=30)
            if streaming:
                list(out)
    return info.value


@pytest.mark.parametrize("method,streaming", [
    ("GenerateSubgraph", False), ("GenerateSubgraphStream", True), ("GenerateFork", True),
    ("InvalidateCache", False), ("RegisterKnowledge", False),
])
def test_malformed_protos_are_invalid_argument(server: Any, client: Client, method: str,
                                               streaming: bool) -> None:
    garbage = b"\x0a\xff\xff\xff\xff\x0f\x01"  # field 1, length far past the end
    err = _raw_call(server.address, method, garbage, streaming=streaming)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ERR_INVALID_REQUEST" in (err.details() or "")
    assert client.health() == "SERVING"


def test_100mb_message_is_refused_and_server_lives(server: Any, client: Client) -> None:
    msg = pb.GenerateSubgraphRequest(target_path="/dynamic/huge", prompt="x" * (100 * 1024 * 1024))
    err = _raw_call(server.address, "GenerateSubgraph", msg.SerializeToString())
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.generate_subgraph(dict(REQUEST, target_path="/dynamic/after_huge")).valid


def test_message_over_configured_limit(make_server: Any) -> None:
    srv = make_server(**{"limits.max_request_bytes": 4096})
    with Client(srv.address) as c:
        with pytest.raises(ServiceError) as info:
            c.generate_subgraph(dict(REQUEST, prompt="y" * 8192))
        assert info.value.status == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert c.generate_subgraph(dict(REQUEST, target_path="/dynamic/small")).valid


def test_client_that_never_reads_its_stream(server: Any, client: Client) -> None:
    with grpc.insecure_channel(server.address) as ch:
        stub = load().pb2_grpc.AgenticLLMStub(ch)
        from agentic_llm.client.convert import request_to_proto
        from agentic_llm.planner import GenerateRequest

        msg = request_to_proto(GenerateRequest.from_json(dict(LONG_REQUEST, target_path="/dynamic/unread")),
                               stream_tokens=True)
        call = stub.GenerateSubgraphStream(msg, timeout=3)  # never iterated
        # Others are served meanwhile.
        assert client.generate_subgraph(dict(REQUEST, target_path="/dynamic/meanwhile")).valid
        end = time.monotonic() + 20
        while server.pipeline.admission.stats().running and time.monotonic() < end:
            time.sleep(0.05)
        # Its deadline passed (or it finished): the slot is free and the call is over.
        assert server.pipeline.admission.stats().running == 0
        call.cancel()
    assert client.health() == "SERVING"


def test_sigterm_under_load_drains(make_server: Any) -> None:
    """SIGTERM (delivered for real to this process) while four streams are running:
    they complete with valid results, new calls get UNAVAILABLE, the server stops."""
    srv = make_server(**{"limits.max_concurrent": 8, "limits.drain_timeout_sec": 60})
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    srv.install_signal_handlers()
    try:
        n = 4
        results: list[Any] = [None] * n
        first_seen = threading.Barrier(n + 1, timeout=60)

        def run(i: int) -> None:
            with Client(srv.address, retry=RetryPolicy(max_attempts=1), timeout=60) as c:
                req = dict(MULTI_NODE_REQUEST, target_path=f"/dynamic/drain_{i}")
                stream = c.stream(req, tokens=True)
                try:
                    assert isinstance(next(stream), TokenDelta)
                    first_seen.wait()
                    results[i] = list(stream)[-1]
                except Exception as exc:  # noqa: BLE001 - recorded for the assertion below
                    results[i] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        first_seen.wait()  # every request is in flight
        os.kill(os.getpid(), signal.SIGTERM)
        end = time.monotonic() + 5
        while not srv.draining and time.monotonic() < end:
            time.sleep(0.01)
        assert srv.draining
        late = Client(srv.address, retry=RetryPolicy(max_attempts=1), timeout=10)
        with late, pytest.raises(ServiceError) as info:
            late.generate_subgraph(dict(REQUEST, target_path="/dynamic/late"))
        assert info.value.status == grpc.StatusCode.UNAVAILABLE
        assert info.value.code == ErrorCode.UNAVAILABLE
        for t in threads:
            t.join(90)
        assert all(isinstance(r, ServingResult) and r.valid for r in results), results
        assert srv.wait(60)  # stopped once drained
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
