"""SubgraphCache: exact and fuzzy hits, the no-stale-answer rule, isolation, invalidation."""

from __future__ import annotations

import dataclasses

import pytest

from agentic_llm.cache.key import SubgraphKey
from agentic_llm.cache.subgraph import SubgraphCache, SubgraphCacheConfig
from agentic_llm.dsl import parse
from tests.cache.helpers import hotel_text, make_plan


def new_cache(**cfg: object) -> SubgraphCache:
    return SubgraphCache(config=SubgraphCacheConfig(**cfg), engine_version=make_plan().engine_version)


def test_exact_hit_returns_the_stored_canonical_text() -> None:
    cache = new_cache()
    p = make_plan()
    assert cache.lookup_plan(p).kind == "miss"
    assert cache.register_plan(p, hotel_text()) is not None
    found = cache.lookup_plan(make_plan())
    assert found.kind == "exact" and found.text == hotel_text()
    assert found.document == parse(hotel_text())
    assert found.entry is not None and found.entry.hits == 1
    assert cache.stats().exact_hits == 1


def test_exact_hit_refused_when_plan_no_longer_grants_a_tool() -> None:
    cache = new_cache(fuzzy=False)
    p = make_plan()
    cache.register_plan(p, hotel_text())
    key = SubgraphKey.from_plan(p)
    narrowed = dataclasses.replace(p.validation_policy(), granted_tools=frozenset({"web_search"}))
    found = cache.lookup(key, values=p.request.context.values, policy=narrowed)
    assert found.kind == "miss" and found.text is None
    assert cache.stats().stale == 1
    # a plan built without the grant does not even share the key
    revoked = make_plan(permissions=["tool:web_search"])
    assert cache.lookup_plan(revoked).kind == "miss"


def test_fuzzy_hit_rebinds_values_and_validates() -> None:
    cache = new_cache()
    cache.register_plan(make_plan(city="Rome", budget=120), hotel_text("Rome", 120))
    p = make_plan(city="Paris", budget=95)
    found = cache.lookup_plan(p)
    assert found.kind == "fuzzy"
    assert found.text == hotel_text("Paris", 95)
    assert "Rome" not in found.text
    # with fuzzy hits off the same lookup is a miss
    off = new_cache(fuzzy=False)
    off.register_plan(make_plan(city="Rome", budget=120), hotel_text("Rome", 120))
    assert off.lookup_plan(p).kind == "miss"


def test_ambiguous_rebinding_is_a_miss_that_keeps_the_kv_hint() -> None:
    cache = new_cache()
    # the old city value also names a node id: it may not be a variable there
    text = hotel_text("search", 120)
    cache.register_plan(make_plan(city="search", budget=120), text, kv_tokens=321)
    found = cache.lookup_plan(make_plan(city="Oslo", budget=120))
    assert found.kind == "miss"
    assert found.kv_hint is not None and found.kv_hint.kv_tokens == 321
    assert cache.stats().ambiguous == 1


def test_two_variables_sharing_a_value_is_ambiguous() -> None:
    from agentic_llm.cache.rebind import rebind

    r = rebind(hotel_text("120", 120), {"city": "120", "budget": 120}, {"city": "Oslo", "budget": 120})
    assert r.text is None and "share" in r.reason


def test_unchanged_values_never_produce_a_fuzzy_answer_for_another_tenant() -> None:
    cache = new_cache()
    cache.register_plan(make_plan(tenant="a"), hotel_text())
    assert cache.lookup_plan(make_plan(tenant="b")).kind == "miss"
    assert cache.lookup_plan(make_plan(tenant="b", city="Paris")).kind == "miss"
    assert cache.lookup_plan(make_plan(tenant="a")).kind == "exact"


def test_invalidate_by_tenant_and_path_prefix() -> None:
    cache = new_cache()
    for tenant in ("a", "b"):
        for path in ("/dynamic/x/one", "/dynamic/x/two", "/dynamic/y"):
            cache.register_plan(make_plan(tenant=tenant, path=path), hotel_text(path=path))
    assert cache.stats().entries == 6
    assert cache.invalidate_path("/dynamic/x", tenant="a") == 2
    assert cache.lookup_plan(make_plan(tenant="a", path="/dynamic/x/one")).kind == "miss"
    assert cache.lookup_plan(make_plan(tenant="b", path="/dynamic/x/one")).kind == "exact"
    assert cache.invalidate_tenant("b") == 3
    assert cache.lookup_plan(make_plan(tenant="b", path="/dynamic/y")).kind == "miss"
    assert cache.lookup_plan(make_plan(tenant="a", path="/dynamic/y")).kind == "exact"
    assert cache.stats().entries == 1


def test_engine_version_change_invalidates_everything() -> None:
    cache = new_cache()
    p = make_plan()
    cache.register_plan(p, hotel_text())
    assert cache.set_engine_version("other-model+g2") == 1
    assert cache.lookup_plan(p).kind == "miss"
    new_key = dataclasses.replace(SubgraphKey.from_plan(p), engine_version="other-model+g2")
    assert cache.lookup(new_key, values=p.request.context.values, policy=None).kind == "miss"
    assert cache.stats().entries == 0


def test_invalid_text_is_never_registered() -> None:
    cache = new_cache()
    p = make_plan(tools=[{"name": "web_search", "arguments": [{"name": "query", "type": "string", "required": True}]}])
    assert cache.register_plan(p, hotel_text()) is None  # uses the ungranted "rank" tool
    assert cache.register_plan(p, "not a document") is None
    assert cache.stats().entries == 0


def test_eviction_keeps_frequent_and_library_entries() -> None:
    clock = [1000.0]
    cache = SubgraphCache(
        config=SubgraphCacheConfig(max_entries=3, frequency_weight_s=100.0, lib_bonus_s=1000.0),
        engine_version=make_plan().engine_version, clock=lambda: clock[0],
    )
    base = SubgraphKey.from_plan(make_plan())
    values = make_plan().request.context.values

    def key(path: str) -> SubgraphKey:
        return dataclasses.replace(base, path=path)

    for path in ["/dynamic/a", "/dynamic/b", "/lib/x/c"]:
        clock[0] += 1
        assert cache.register(key(path), hotel_text(path=path), values=values) is not None
    for _ in range(3):
        clock[0] += 1
        assert cache.lookup(key("/dynamic/a"), values=values, policy=None).kind == "exact"
    clock[0] += 1
    cache.register(key("/dynamic/d"), hotel_text(path="/dynamic/d"), values=values)
    # /dynamic/b: old, never hit, not library -> evicted; the hot and /lib ones stay
    assert cache.lookup(key("/dynamic/b"), values=values, policy=None).kind == "miss"
    for path in ("/dynamic/a", "/lib/x/c", "/dynamic/d"):
        assert cache.lookup(key(path), values=values, policy=None).kind == "exact", path
    assert cache.stats().evictions == 1


def test_ttl_expiry_and_byte_limit() -> None:
    clock = [1000.0]
    cache = SubgraphCache(config=SubgraphCacheConfig(ttl_s=10.0), engine_version=make_plan().engine_version,
                          clock=lambda: clock[0])
    cache.register_plan(make_plan(), hotel_text())
    assert cache.lookup_plan(make_plan()).kind == "exact"
    # the memory store checks expiry against wall time: register with an absolute past
    key = SubgraphKey.from_plan(make_plan(path="/dynamic/old"))
    cache.register(key, hotel_text(path="/dynamic/old"), values={"city": "Rome", "budget": 120}, ttl_s=1e-9)
    clock[0] = 0.0  # irrelevant for the store: its expiry is absolute
    found = cache.lookup(key, values={"city": "Rome", "budget": 120}, policy=None)
    assert found.kind == "miss"
    small = SubgraphCache(config=SubgraphCacheConfig(max_bytes=2500), engine_version=make_plan().engine_version)
    for i in range(5):
        small.register_plan(make_plan(path=f"/dynamic/p{i}"), hotel_text(path=f"/dynamic/p{i}"))
        assert small.stats().bytes <= 2500


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        SubgraphCacheConfig(ttl_s=0)
    with pytest.raises(ValueError):
        SubgraphCacheConfig(max_entries=0)
    with pytest.raises(ValueError):
        SubgraphCache(engine_version="")
