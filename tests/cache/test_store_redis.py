"""Redis store: a real redis-server on a loopback port, shared by two processes, and
requests still served when it dies mid-run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentic_llm import envs
from agentic_llm.cache.stores import StoreConfig, open_store
from agentic_llm.cache.stores.redis_store import RedisStore
from agentic_llm.cache.subgraph import SubgraphCache
from tests.cache.helpers import hotel_text, make_plan

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(exe):
            # CI installs redis-server (.ci/run); there its absence is a failure
            if envs.require_all_components():
                pytest.fail("redis-server is not installed; .ci/run installs it from Debian")
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(_free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_store_contract_and_corrupt_records(redis_server: RedisServer) -> None:
    store = open_store(StoreConfig(kind="redis", url=redis_server.url, namespace="t1:"))
    assert isinstance(store, RedisStore)
    store.put("a:1", b"one")
    store.put("a:2", b"two", expires_at=time.time() + 60)
    store.put("b:1", b"three")
    assert store.get("a:1") == b"one" and store.get("missing") is None
    assert sorted(store.keys("a:")) == ["a:1", "a:2"]
    raw = redis.Redis.from_url(redis_server.url)
    raw.set("t1:a:1", b"garbage that is no frame at all")
    assert store.get("a:1") is None  # never served
    assert store.corrupt_dropped == 1 and raw.get("t1:a:1") is None
    assert store.delete(["a:2", "b:1", "nope"]) == 2
    store.close()


SIDE_PROCESS = textwrap.dedent(
    """
    import sys
    from agentic_llm.cache.stores import StoreConfig, open_store
    from agentic_llm.cache.subgraph import SubgraphCache
    from tests.cache.helpers import hotel_text, make_plan
    url, action = sys.argv[1], sys.argv[2]
    p = make_plan(city="Lima", budget=50)
    cache = SubgraphCache(open_store(StoreConfig(kind="redis", url=url)), engine_version=p.engine_version)
    if action == "register":
        assert cache.register_plan(p, hotel_text("Lima", 50)) is not None
        print("registered")
    else:
        print(cache.lookup_plan(make_plan(city="Rome", budget=120)).kind)
    """
)


def _side(url: str, action: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", SIDE_PROCESS, url, action], capture_output=True, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, timeout=120,
    )
    return out.stdout.decode().strip()


def test_two_processes_share_one_cache(redis_server: RedisServer) -> None:
    assert _side(redis_server.url, "register") == "registered"
    cache = SubgraphCache(open_store(StoreConfig(kind="redis", url=redis_server.url)),
                          engine_version=make_plan().engine_version)
    found = cache.lookup_plan(make_plan(city="Lima", budget=50))
    assert found.kind == "exact" and found.text == hotel_text("Lima", 50)
    fuzzy = cache.lookup_plan(make_plan(city="Oslo", budget=70))
    assert fuzzy.kind == "fuzzy" and fuzzy.text == hotel_text("Oslo", 70)
    cache.register_plan(make_plan(city="Rome", budget=120), hotel_text("Rome", 120))
    assert _side(redis_server.url, "lookup") == "exact"


def test_redis_killed_mid_run_degrades_to_local_and_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(redis_server.url, socket_timeout_s=0.2, retry_s=0.3)
    cache = SubgraphCache(store, engine_version=make_plan().engine_version)
    cache.register_plan(make_plan(), hotel_text())
    assert cache.lookup_plan(make_plan()).kind == "exact"
    redis_server.kill()
    with caplog.at_level("WARNING"):
        # the shared entry is out of reach: a miss, never an exception
        assert cache.lookup_plan(make_plan()).kind == "miss"
    assert store.degraded and store.outages == 1
    assert any("unavailable" in r.message for r in caplog.records)
    # requests keep being served from the local fallback
    assert cache.register_plan(make_plan(city="Paris"), hotel_text("Paris")) is not None
    assert cache.lookup_plan(make_plan(city="Paris")).kind == "exact"
    assert cache.lookup_plan(make_plan(city="Oslo")).kind == "fuzzy"
    # the server comes back on the same port: the store reconnects and copies local records
    redis_server.start()
    time.sleep(0.35)
    assert cache.lookup_plan(make_plan(city="Paris")).kind == "exact"
    assert not store.degraded
    other = SubgraphCache(open_store(StoreConfig(kind="redis", url=redis_server.url)),
                          engine_version=make_plan().engine_version)
    assert other.lookup_plan(make_plan(city="Paris")).kind == "exact"


def test_redis_down_from_the_start_serves_locally() -> None:
    store = RedisStore(f"redis://127.0.0.1:{_free_port()}/0", socket_timeout_s=0.2, retry_s=30.0)
    cache = SubgraphCache(store, engine_version=make_plan().engine_version)  # opening never fails
    assert store.degraded
    assert cache.lookup_plan(make_plan()).kind == "miss"
    assert cache.register_plan(make_plan(), hotel_text()) is not None
    assert cache.lookup_plan(make_plan()).kind == "exact"


def _pause(server: RedisServer) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)


def _resume(server: RedisServer) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGCONT)


def test_invalidation_during_an_outage_fails_instead_of_being_undone(
    redis_server: RedisServer,
) -> None:
    from agentic_llm.errors import AgenticError, ErrorCode

    store = RedisStore(redis_server.url, socket_timeout_s=0.2, retry_s=0.3)
    cache = SubgraphCache(store, engine_version=make_plan().engine_version)
    cache.register_plan(make_plan(), hotel_text())
    assert cache.lookup_plan(make_plan()).kind == "exact"
    _pause(redis_server)  # unresponsive, with its data: comes back as it was
    try:
        for invalidate in (lambda: cache.invalidate_path("/dynamic/plan_1"),
                           lambda: cache.invalidate_tenant(""), cache.clear):
            with pytest.raises(AgenticError) as info:
                invalidate()
            assert info.value.code == ErrorCode.UNAVAILABLE
    finally:
        _resume(redis_server)
    time.sleep(0.35)
    assert cache.lookup_plan(make_plan()).kind == "exact"  # nothing was reported removed
    assert cache.invalidate_path("/dynamic/plan_1") == 1
    assert cache.lookup_plan(make_plan()).kind == "miss"


def test_records_copied_back_after_an_outage_keep_their_ttl(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, socket_timeout_s=0.2, retry_s=0.3)
    cache = SubgraphCache(store, engine_version=make_plan().engine_version)
    redis_server.kill()
    assert cache.register_plan(make_plan(city="Paris"), hotel_text("Paris")) is not None
    assert store.degraded
    redis_server.start()
    time.sleep(0.35)
    assert cache.lookup_plan(make_plan(city="Paris")).kind == "exact"
    assert not store.degraded
    raw = redis.Redis.from_url(redis_server.url)
    keys = list(raw.scan_iter(match="agentic:sg:*"))
    assert keys
    for k in keys:
        assert raw.pttl(k) > 0, k  # -1 would be a record that never expires


def test_an_undecodable_key_in_redis_is_skipped(redis_server: RedisServer) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    raw.set(b"agentic:sg:sg:\xc9bad", b"whatever")
    store = RedisStore(redis_server.url, socket_timeout_s=0.2, retry_s=0.3)
    cache = SubgraphCache(store, engine_version=make_plan().engine_version)  # must not raise
    cache.register_plan(make_plan(), hotel_text())
    assert cache.lookup_plan(make_plan(city="Oslo")).kind == "fuzzy"
    assert cache.invalidate_path("/dynamic") == 1
    assert cache.clear() == 0
    assert store.bad_keys >= 1 and cache.stats().bad_keys >= 1
