"""Faults: malformed protos, oversized messages, a client that never reads its
stream, SIGTERM under load. None of them may take the server down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

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


def _start_server(tmp: Path, model_dir: Path) -> tuple[subprocess.Popen[str], str]:
    cfg = {"listen": "127.0.0.1:0", "model": {"dir": str(model_dir), "num_blocks": 512},
           "cache": {"store": "memory"},
           "limits": {"max_concurrent": 8, "max_queue": 8, "drain_timeout_sec": 60}}
    path = tmp / "server.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "agentic_llm.cli.main", "serve", "--config", str(path)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if "serving on" in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, line.strip().rsplit(" ", 1)[-1]
    proc.kill()
    raise AssertionError("the server did not start")


def test_sigterm_under_load_drains(tmp_path: Path, tiny_model_dir: Path) -> None:
    proc, address = _start_server(tmp_path, tiny_model_dir)
    try:
        n = 4
        results: list[Any] = [None] * n
        first_seen = threading.Barrier(n + 1, timeout=60)

        def run(i: int) -> None:
            with Client(address, retry=RetryPolicy(max_attempts=1), timeout=60) as c:
                req = dict(MULTI_NODE_REQUEST, target_path=f"/dynamic/drain_{i}",
                           sampling={"temperature": 1.0, "seed": 7})
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
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        late = Client(address, retry=RetryPolicy(max_attempts=1), timeout=10)
        with late, pytest.raises(ServiceError) as info:
            late.generate_subgraph(dict(REQUEST, target_path="/dynamic/late"))
        assert info.value.status == grpc.StatusCode.UNAVAILABLE
        assert info.value.code == ErrorCode.UNAVAILABLE
        for t in threads:
            t.join(90)
        assert all(isinstance(r, ServingResult) and r.valid for r in results), results
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
