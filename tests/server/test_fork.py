"""GenerateFork: several branches in one call, one result (or error) per branch."""

from __future__ import annotations

from typing import Any

from agentic_llm.errors import ErrorCode
from tests.server.conftest import REQUEST


def test_fork_yields_every_branch_once(client: Any) -> None:
    branches = [dict(REQUEST, target_path=f"/dynamic/fork_{i}", prompt=f"Branch {i}: find hotels")
                for i in range(3)]
    branches.append(dict(REQUEST, target_path="/lib/not_writable"))
    results = list(client.fork(branches, dag_id="dag-7"))
    assert sorted(r.index for r in results) == [0, 1, 2, 3]
    by_index = {r.index: r for r in results}
    for i in range(3):
        r = by_index[i]
        assert r.error is None and r.result is not None
        assert r.result.valid and r.result.target_path == f"/dynamic/fork_{i}"
        assert r.result.dag_id == "dag-7" and r.result.branch_id == str(i)
        assert r.branch_id == str(i)
    bad = by_index[3]
    assert bad.result is None and bad.error is not None
    assert bad.error.code == ErrorCode.NAMESPACE_VIOLATION


def test_fork_keeps_given_branch_ids(client: Any) -> None:
    branches = [dict(REQUEST, target_path=f"/dynamic/named_{b}", branch_id=b) for b in ("left", "right")]
    results = {r.branch_id: r for r in client.fork(branches, dag_id="dag-8")}
    assert set(results) == {"left", "right"}
    assert all(r.result is not None and r.result.branch_id == b for b, r in results.items())


def test_fork_with_too_many_branches_is_refused(make_server: Any) -> None:
    from agentic_llm.client import Client, ServiceError

    srv = make_server(**{"limits.max_fork_branches": 2})
    with Client(srv.address) as c:
        branches = [dict(REQUEST, target_path=f"/dynamic/many_{i}") for i in range(3)]
        try:
            list(c.fork(branches))
        except ServiceError as exc:
            assert exc.code == ErrorCode.INPUT_TOO_LARGE
            assert exc.status.name == "RESOURCE_EXHAUSTED"
        else:
            raise AssertionError("a fork over the branch limit was accepted")


def test_cancelling_a_fork_stops_every_branch(server: Any, pipeline: Any) -> None:
    import threading
    import time

    import grpc

    from agentic_llm.client.convert import request_to_proto
    from agentic_llm.client.protos import load
    from agentic_llm.planner import GenerateRequest
    from tests.server.conftest import LONG_REQUEST

    pb = load().pb2
    msg = pb.GenerateForkRequest(dag_id="dag-cancel")
    for i in range(2):
        msg.branches.append(request_to_proto(GenerateRequest.from_json(
            dict(LONG_REQUEST, target_path=f"/dynamic/cancel_{i}"))))
    admission = server.pipeline.admission
    with grpc.insecure_channel(server.address) as ch:
        call = load().pb2_grpc.AgenticLLMStub(ch).GenerateFork(msg, timeout=60)
        end = time.monotonic() + 20
        while admission.stats().running < 2 and time.monotonic() < end:
            time.sleep(0.01)
        assert admission.stats().running == 2
        threading.Timer(0.2, call.cancel).start()
        try:
            list(call)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.CANCELLED
        # Both branches are stopped long before they could have finished (~10 s each).
        end = time.monotonic() + 5
        while (admission.stats().running or pipeline.engine.stats()["running"]) and time.monotonic() < end:
            time.sleep(0.02)
        assert admission.stats().running == 0
        assert pipeline.engine.stats()["running"] == 0
