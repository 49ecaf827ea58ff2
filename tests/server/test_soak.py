"""``bench soak`` against a loopback server: counts every call, reports RSS."""

from __future__ import annotations

import argparse
import os
from typing import Any

from agentic_llm.benchmarks.soak import add_arguments, run_soak, unique_request


def test_unique_requests_differ_in_path_values_and_prompt() -> None:
    a = unique_request(1, unique=True, max_tokens=64, deadline=5)
    b = unique_request(2, unique=True, max_tokens=64, deadline=5)
    assert a["target_path"] != b["target_path"] and a["prompt"] != b["prompt"]
    assert a["context"]["values"] != b["context"]["values"] and a["flags"]["bypass_cache"]


def test_a_short_soak_counts_every_call(server: Any) -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--clients", "2", "--duration", "4", "--unique", "--deadline", "20",
                         "--max-tokens", "200"])
    out = run_soak(args, server.address, os.getpid())
    assert out["answered"] > 0 and out["calls"] == out["answered"]
    assert out["lost"] == 0 and out["hung"] == 0
    assert sum(out["outcomes"].values()) == out["answered"]
    assert out["rss_mb"]["per_minute"] and out["rss_mb"]["end"] > 0


def test_heap_bound_trims_on_glibc() -> None:
    from agentic_llm.server.heap import HeapBound

    bound = HeapBound(arena_max=0, trim_interval_s=0)
    bound.trim()
    assert bound.trims == (1 if bound._libc is not None else 0)
    bound.stop()


def test_the_tokenizer_word_cache_can_be_capped() -> None:
    from tokenizers import Tokenizer

    from agentic_llm.models import default_model_dir
    from agentic_llm.server.heap import bound_tokenizer_cache

    tok = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    assert bound_tokenizer_cache(tok, 4096)
    assert not bound_tokenizer_cache(tok, 0)
    assert not bound_tokenizer_cache(object(), 4096)
    assert tok.encode("still encodes city-12345").ids
