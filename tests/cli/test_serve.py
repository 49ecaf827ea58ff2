"""``agentic-llm serve`` as an operator runs it: what it says while it loads, its
start-up summary, one line per request, and the address printed once."""

from __future__ import annotations

import re

import pytest

from agentic_llm.client import Client, ServiceError
from tests.cli.serve_process import serve_process

ASK = {"target_path": "/dynamic/plan_1", "prompt": "Find hotels in {{ city }}",
       "context": {"available_vars": {"city": "string"}, "values": {"city": "Rome"}}}


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


@pytest.mark.timeout(600)
def test_serve_logs_start_up_and_each_request() -> None:
    with serve_process(["--profile", "dev", "--set", "log_level=info"]) as srv:
        with Client(srv.address) as client:
            first = client.generate_subgraph(**ASK, tenant="acme")
            again = client.generate_subgraph(**ASK, tenant="acme")
            with pytest.raises(ServiceError):
                client.generate_subgraph(target_path="/main/x", prompt="x")
        assert srv.wait_for("status=ERR_NAMESPACE_VIOLATION")
    text = srv.stderr()
    lines = text.splitlines()

    loading = [i for i, ln in enumerate(lines) if "agentic-llm: loading model agentic-tiny" in ln]
    started = [i for i, ln in enumerate(lines) if "agentic_llm.serve: started " in ln]
    serving = [i for i, ln in enumerate(lines) if "serving on" in ln]
    assert len(loading) == 1 and len(started) == 1 and len(serving) == 1, text
    assert loading[0] < started[0] < serving[0]
    summary = _fields(lines[started[0]])
    assert summary["model"] == "agentic-tiny" and summary["device"] == "cpu"
    assert summary["dtype"] == "float32" and summary["profile"] == "dev"
    assert int(summary["parameters"]) > 1_000_000
    assert int(summary["kv_pages"]) > 0 and int(summary["kv_bytes"]) > 0
    assert summary["auth"] == "off" and summary["cache"] == "memory"
    assert summary["listen"] == srv.address and summary["metrics"] == "off"

    requests = [_fields(ln) for ln in lines if "INFO agentic_llm.requests: request " in ln]
    assert len(requests) == 3, text
    ok, hit, refused = requests
    assert ok["id"] == first.request_id and ok["tenant"] == "acme"
    assert ok["path"] == "/dynamic/plan_1" and ok["status"] == "ok"
    assert ok["cache"] == first.cache.value and int(ok["completion_tokens"]) > 0
    assert float(ok["ttft_ms"]) > 0 and float(ok["total_ms"]) >= float(ok["ttft_ms"])
    assert hit["id"] == again.request_id and hit["cache"] == "exact"
    assert refused["path"] == "/main/x" and refused["status"] == "ERR_NAMESPACE_VIOLATION"
