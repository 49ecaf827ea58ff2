"""Every call completes with an ERR_* status, over a real loopback server: huge and
pathological prompts, non-ASCII target paths, NaN values, signatures that break out
of their line, cache stores with undecodable keys or gone away."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import lmdb
import pytest

from agentic_llm.client import Client, RetryPolicy, ServiceError
from agentic_llm.errors import ErrorCode
from tests.server.conftest import REQUEST

NO_RETRY = RetryPolicy(max_attempts=1)


def _refused(c: Client, req: dict[str, Any], *, within: float) -> ServiceError:
    t0 = time.monotonic()
    with pytest.raises(ServiceError) as info:
        c.generate_subgraph(req, timeout=within)
    assert time.monotonic() - t0 < within, "the call was not answered in time"
    return info.value


def _server_over(pipeline: Any, *, tokenizer: Any = None, **parts: Any) -> Any:
    """A started server over a view of the shared pipeline with other parts."""
    from agentic_llm.config import ServerConfig
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import Admission

    view = copy.copy(pipeline.with_admission(Admission(8, 16)))
    view.parts = replace(pipeline.parts, **parts)
    view.__dict__.pop("_prompt_char_limit", None)
    if tokenizer is not None:
        view.tokenizer = tokenizer
    return AgenticServer(ServerConfig.from_dict({"listen": "127.0.0.1:0"}), view).start()


def test_a_megabytes_prompt_of_one_character_is_refused_not_hung(client: Client) -> None:
    req = dict(REQUEST, target_path="/dynamic/huge", prompt="a" * (2_500_000))
    err = _refused(client, req, within=20)
    assert err.code == ErrorCode.CONTEXT_TOO_LONG


def test_a_tokenizer_panic_becomes_a_status(pipeline: Any) -> None:
    from tokenizers import Tokenizer

    from agentic_llm.models import default_model_dir

    # The shipped model's tokenizer panics (pyo3 PanicException, a BaseException) on
    # 2.5 MB of one character; with a context large enough that the character check
    # lets the prompt through, the panic itself must become a status.
    tok = Tokenizer.from_file(str(Path(default_model_dir()) / "tokenizer.json"))
    srv = _server_over(pipeline, tokenizer=tok, max_model_len=10**7)
    try:
        with Client(srv.address, retry=NO_RETRY) as c:
            req = dict(REQUEST, target_path="/dynamic/panic", prompt="a" * 2_500_000,
                       flags={"bypass_cache": True})
            err = _refused(c, req, within=60)
            assert err.code == ErrorCode.INVALID_REQUEST, err
            assert "PanicException" in err.message
    finally:
        srv.stop()


@pytest.mark.parametrize("path", ["/dynamic/plan_日本", "/dynamic/plän"])
def test_non_ascii_target_paths_are_refused_at_planning(client: Client, path: str) -> None:
    err = _refused(client, dict(REQUEST, target_path=path), within=5)
    assert err.code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_in_values_are_invalid_requests(server: Any, value: float) -> None:
    import grpc

    from agentic_llm.client.errors import from_rpc_error
    from agentic_llm.client.protos import load

    pb = load().pb2
    # the SDK refuses NaN itself; a hand-made message reaches the server
    msg = pb.GenerateSubgraphRequest(target_path="/dynamic/nan", prompt="rank {{ x }}")
    msg.context.available_vars["x"] = "number"
    msg.context.values.update({"x": value})
    with grpc.insecure_channel(server.address) as channel:
        stub = load().pb2_grpc.AgenticLLMStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GenerateSubgraph(msg, timeout=10)
    assert from_rpc_error(info.value).code == ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("signature", ["(a: string)\n-> b: string", "(a: string) -> `b`"])
def test_a_signature_that_breaks_its_line_is_refused_at_planning(
    client: Client, signature: str,
) -> None:
    err = _refused(client, dict(REQUEST, target_path="/dynamic/sig", signature=signature), within=5)
    assert err.code == ErrorCode.INVALID_REQUEST


def test_serve_starts_over_an_lmdb_cache_with_an_undecodable_key(
    pipeline: Any, tmp_path: Path,
) -> None:
    from agentic_llm.config import CacheConfig
    from agentic_llm.serving import open_subgraph_cache

    with lmdb.open(str(tmp_path), map_size=1 << 24) as env, env.begin(write=True) as txn:
        txn.put(b"sg:\xc9bad", b"not a record")
    cache = open_subgraph_cache(CacheConfig(store="lmdb", path=str(tmp_path)))
    assert cache is not None
    srv = _server_over(pipeline, cache=cache)
    try:
        with Client(srv.address, retry=NO_RETRY) as c:
            req = dict(REQUEST, target_path="/dynamic/badkey")
            assert c.generate_subgraph(req).valid
            assert c.generate_subgraph(dict(req, context={
                "available_vars": {"city": "string"}, "values": {"city": "Oslo"}})).valid
            assert c.invalidate_cache(path_prefix="/dynamic/badkey") >= 1
            assert c.invalidate_cache(all=True) >= 0
            assert c.cache_stats()["bad_keys"] >= 1
    finally:
        srv.stop()
        cache.close()
