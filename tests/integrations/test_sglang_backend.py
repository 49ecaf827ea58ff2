"""Contract tests of the ``agentic-dsl`` grammar backend against SGLang's own classes
(sglang 0.5.23 installed with --no-deps on the CPU; see requirements/sglang-cpu-test.txt).

What SGLang does with a grammar backend is exercised through its real code: the
plugin loader, the grammar manager's compile/cache/copy, ``traverse_tree`` over
draft trees and ``SamplingBatchInfo``'s batch mask with a fake model's logits.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from agentic_llm.dsl import Subgraph, check_text, parse
from agentic_llm.grammar import GrammarCompiler
from agentic_llm.integrations.sglang import BACKEND_NAME, grammar_key, handle_key
from agentic_llm.planner import GenerateRequest, plan
from tests.integrations.conftest import TINY
from tests.integrations.drafttree import allowed_ids, random_tree
from tests.integrations.sglang_env import import_spec_utils, load_sglang

ROOT = Path(__file__).resolve().parents[2]
VOCAB = 3072
EOS = {2}
REQUEST = json.loads((ROOT / "examples" / "requests" / "hotels.json").read_text())
SCHEMA = json.dumps({"type": "object", "properties": {"city": {"type": "string"},
                                                      "nights": {"type": "integer"}},
                     "required": ["city", "nights"], "additionalProperties": False})


@pytest.fixture(scope="module", autouse=True)
def _sglang_loaded() -> None:
    load_sglang()


@pytest.fixture(scope="module")
def hf_tokenizer() -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(TINY / "tokenizer.json"),
                                   eos_token="<|endoftext|>", bos_token="<|bos|>", pad_token="<|pad|>")


@pytest.fixture(scope="module")
def backend(hf_tokenizer: Any) -> Any:
    from agentic_llm.integrations.sglang.plugin import create_backend

    return create_backend(None, hf_tokenizer, VOCAB, EOS)


def _small_request(target: str = "/dynamic/plan_1", max_nodes: int = 4) -> dict[str, Any]:
    req = json.loads(json.dumps(REQUEST))
    req["target_path"] = target
    req["budget"] = {"max_nodes": max_nodes, "max_tokens": 1024}
    return req


def _replay(compiler: GrammarCompiler, req: dict[str, Any], ids: list[int]) -> Any:
    m = compiler.matcher_for(plan(GenerateRequest.from_json(req)))
    for t in ids:
        assert m.accept_token(t)
    return m


def _allowed_after(compiler: GrammarCompiler, req: dict[str, Any], ids: list[int]) -> np.ndarray:
    if _replay(compiler, req, ids).is_terminated():
        return np.zeros(0, dtype=np.int64)
    return allowed_ids(_fresh_mask(compiler, req, ids), VOCAB)


def _biased_walk(g: Any, rng: random.Random, limit: int = 2000) -> list[int]:
    """A random complete document: tokens that hold a quote or a newline are picked
    half the time, so strings and lines end."""
    texts = g.matcher._vocab.info.token_bytes  # noqa: SLF001
    mask = g.allocate_vocab_mask(VOCAB, 1, "cpu")
    out: list[int] = []
    while not g.is_terminated() and len(out) < limit:
        g.fill_vocab_mask(mask, 0)
        allowed = allowed_ids(mask[0], VOCAB).tolist()
        closing = [t for t in allowed if t < len(texts) and (b'"' in texts[t] or b"\n" in texts[t])]
        t = rng.choice(closing if closing and rng.random() < 0.5 else allowed)
        g.accept_token(t)
        out.append(t)
    assert g.is_terminated()
    return out


def _compile(backend: Any, key: tuple[str, str]) -> Any:
    value, hit = backend.get_cached_or_future_value(key, False)
    return value if hit else value.result(timeout=60)


def _fresh_mask(compiler: GrammarCompiler, req: dict[str, Any], ids: list[int]) -> np.ndarray:
    import xgrammar as xgr

    m = compiler.matcher_for(plan(GenerateRequest.from_json(req)))
    for t in ids:
        assert m.accept_token(t)
    bm = xgr.allocate_token_bitmask(1, VOCAB)
    m.fill_next_token_bitmask(bm, 0)
    return bm[0].numpy().copy()


# -- registration -----------------------------------------------------------------


def _built_metadata(tmp: Path) -> Path:
    """Our distribution's metadata as setuptools builds it from pyproject.toml (the
    same dist-info an install writes), in ``tmp`` rather than the environment: a
    re-install would repoint the environment's editable install at this checkout."""
    src = tmp / "src"
    (src / "agentic_llm").mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    (src / "agentic_llm" / "__init__.py").write_text("")
    out = tmp / "meta"
    out.mkdir()
    code = ("import sys; from setuptools import build_meta as b; "
            "print(b.prepare_metadata_for_build_wheel(sys.argv[1]))")
    run = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True,
                         text=True, timeout=120, check=True)
    return out / run.stdout.strip().splitlines()[-1]


def test_entry_point_registers_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sglang.srt.arg_groups.choices import GRAMMAR_BACKEND_CHOICES
    from sglang.srt.constrained import base_grammar_backend as bgb
    from sglang.srt.plugins import GENERAL_PLUGINS_GROUP, load_plugins_by_group

    from agentic_llm.integrations.sglang import plugin

    dist_info = _built_metadata(tmp_path)
    assert "agentic-dsl = agentic_llm.integrations.sglang.plugin:register" in (
        dist_info / "entry_points.txt").read_text()
    monkeypatch.syspath_prepend(str(dist_info.parent))
    monkeypatch.setattr(bgb, "GRAMMAR_BACKEND_REGISTRY", {})
    had_choice = BACKEND_NAME in GRAMMAR_BACKEND_CHOICES  # the list server_args validates with
    found = load_plugins_by_group(GENERAL_PLUGINS_GROUP)
    func, dist = found[BACKEND_NAME]
    assert func is plugin.register and dist == "agentic-llm"
    try:
        func()
        assert bgb.GRAMMAR_BACKEND_REGISTRY[BACKEND_NAME] is plugin.create_backend
        assert BACKEND_NAME in GRAMMAR_BACKEND_CHOICES
        func()  # every scheduler process runs it; the choice is listed once
        assert GRAMMAR_BACKEND_CHOICES.count(BACKEND_NAME) == 1
    finally:
        if not had_choice:
            GRAMMAR_BACKEND_CHOICES.remove(BACKEND_NAME)


# -- compile, refuse, cache and copy -------------------------------------------------


class _Params:
    def __init__(self, **kw: Any) -> None:
        self.json_schema = kw.get("json_schema")
        self.regex = None
        self.ebnf = kw.get("ebnf")
        self.structural_tag = None
        self.ebnf_full_assistant = False
        self.custom_params = None


class _Req:
    """The fields of SGLang's ``Req`` that the grammar manager reads and writes."""

    def __init__(self, rid: str, **params: Any) -> None:
        self.rid = rid
        self.sampling_params = _Params(**params)
        self.origin_input_ids = [1]
        self.require_reasoning = False
        self.grammar: Any = None
        self.grammar_key: Any = None
        self.grammar_wait_ct = 0
        self.aborted: str | None = None

    def finished(self) -> bool:
        return self.aborted is not None

    def set_finish_with_abort(self, msg: str) -> None:
        self.aborted = msg


def _manager(backend: Any) -> Any:
    """SGLang's ``GrammarManager`` on one rank (its constructor needs a scheduler and
    the runtime context; the attributes it would set are set here)."""
    from sglang.srt.constrained.grammar_manager import GrammarManager

    gm = GrammarManager.__new__(GrammarManager)
    gm.grammar_backend, gm.grammar_queue = backend, []
    gm._enable_strict_thinking = False
    gm.grammar_sync_size, gm.pp_rank, gm.pp_size, gm.pp_group = 1, 0, 1, None
    gm.grammar_pp_sync_work_list = []
    gm.SGLANG_GRAMMAR_POLL_INTERVAL, gm.SGLANG_GRAMMAR_MAX_POLL_ITERATIONS = 0.05, 10_000
    return gm


def _drain(gm: Any) -> None:
    while gm.has_waiting_grammars():
        gm.get_ready_grammar_requests()


def test_grammar_manager_caches_and_copies(backend: Any) -> None:
    from agentic_llm.integrations.sglang.grammar import DSLGrammar

    backend.reset()
    gm = _manager(backend)
    key = grammar_key(_small_request())
    first = _Req("a", ebnf=key)
    assert gm.process_req_with_grammar(first)  # compiled on the backend's executor
    _drain(gm)
    assert first.aborted is None and isinstance(first.grammar, DSLGrammar)
    cached = backend.cache[("ebnf", key)]
    assert cached is not first.grammar
    tok = REQUEST_FIRST_TOKEN(backend)
    first.grammar.accept_token(tok)
    second = _Req("b", ebnf=key)
    assert not gm.process_req_with_grammar(second)  # a cache hit: no queue
    g2 = second.grammar
    assert isinstance(g2, DSLGrammar) and g2 is not cached and g2.matcher is not cached.matcher
    assert g2.grammar_stats.is_cache_hit and g2.accepted == 0
    # the copy starts at the beginning of the document, whatever the first request did
    mask = g2.allocate_vocab_mask(VOCAB, 2, "cpu")
    g2.fill_vocab_mask(mask, 0)
    first.grammar.fill_vocab_mask(mask, 1)
    start = _fresh_mask(backend.compiler, _small_request(), [])
    assert np.array_equal(mask[0].numpy(), start)
    assert np.array_equal(mask[1].numpy(), _fresh_mask(backend.compiler, _small_request(), [tok]))


def REQUEST_FIRST_TOKEN(backend: Any) -> int:  # noqa: N802 - a constant derived once per backend
    allowed = allowed_ids(_fresh_mask(backend.compiler, _small_request(), []), VOCAB)
    return int(allowed[0])


def test_refusals_take_the_invalid_grammar_path(backend: Any) -> None:
    backend.reset()
    gm = _manager(backend)
    bad = _Req("lib", ebnf=grammar_key(_small_request(target="/lib/x/y")))
    gm.process_req_with_grammar(bad)
    _drain(gm)
    assert bad.aborted is not None and "ERR_" in bad.aborted and "ERR_NAMESPACE" in bad.aborted
    # the cached refusal answers the next identical request at once
    again = _Req("lib2", ebnf=grammar_key(_small_request(target="/lib/x/y")))
    assert not gm.process_req_with_grammar(again)
    assert again.aborted is not None and "ERR_NAMESPACE" in again.aborted
    for key, code in (("#agentic-dsl/v1\n{not json", "ERR_INVALID_REQUEST"),
                      ("#agentic-dsl/v1\nplan:" + "0" * 64, "ERR_INVALID_REQUEST"),
                      ("#agentic-dsl/v1\nhello", "ERR_INVALID_REQUEST")):
        r = _Req("x", ebnf=key)
        gm.process_req_with_grammar(r)
        _drain(gm)
        assert r.aborted is not None and code in r.aborted, r.aborted


def test_plan_handle_names_a_planned_request(backend: Any) -> None:
    from agentic_llm.integrations.sglang.grammar import DSLGrammar

    req = _small_request(target="/dynamic/handled")
    assert isinstance(_compile(backend, ("ebnf", grammar_key(req))), DSLGrammar)
    g = _compile(backend, ("ebnf", handle_key(req)))
    assert isinstance(g, DSLGrammar)
    mask = g.allocate_vocab_mask(VOCAB, 1, "cpu")
    g.fill_vocab_mask(mask, 0)
    assert np.array_equal(mask[0].numpy(), _fresh_mask(backend.compiler, req, []))


# -- speculative draft trees ---------------------------------------------------------


def test_traverse_tree_masks_equal_fresh_replays(backend: Any) -> None:
    spec_utils = import_spec_utils()
    rng = random.Random(0)
    compiler = backend.compiler
    req = _small_request(max_nodes=3)
    base = _compile(backend, ("ebnf", grammar_key(req)))
    stops = set(compiler.tokenizer_info.stop_token_ids)
    checked = past_end = 0
    for _ in range(8):
        # a random complete document, then a tree rooted a few tokens before its end
        g = base.copy()
        doc = _biased_walk(g, rng)
        g = base.copy()
        cut = max(1, len(doc) - rng.choice([1, 2, 3, rng.randint(4, len(doc))]))
        walk, root = doc[:cut - 1], doc[cut - 1]
        for t in walk + [root]:
            g.accept_token(t)
        head = walk + [root]
        tree = random_tree(rng, lambda path, head=head: _allowed_after(compiler, req, head + path),  # type: ignore[misc]
                           root, stops, depth=4, width=3)
        nxt, sib, toks = tree.tensors()
        out = torch.full((len(tree.tokens), (VOCAB + 31) // 32), 0x5A5A5A5A, dtype=torch.int32)
        spec_utils.traverse_tree(nxt, sib, toks, g, out, VOCAB)
        assert g.accepted == cut  # every rollback(1) matched an accept
        for node in range(len(tree.tokens)):
            path = walk + [root] + tree.path(node)
            reach = all(t in set(_allowed_after(compiler, req, path[:i]).tolist())
                        for i, t in enumerate(path) if i >= cut)
            m = _replay(compiler, req, path) if reach else None
            if m is not None and not m.is_terminated():
                assert np.array_equal(out[node].numpy(), _fresh_mask(compiler, req, path)), node
                checked += 1
            else:
                past_end += m is not None
                assert bool((out[node] == 0x5A5A5A5A).all()), f"node {node} filled though not reached"
    assert checked > 40 and past_end > 0
    assert checked > 40


# -- a fake model through SamplingBatchInfo --------------------------------------------


def _batch_info(grammars: list[Any]) -> Any:
    from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo

    n = len(grammars)
    return SamplingBatchInfo(
        temperatures=torch.ones(n, 1), top_ps=torch.ones(n), top_ks=torch.ones(n, dtype=torch.int32),
        min_ps=torch.zeros(n), is_all_greedy=True, is_any_greedy=True, need_top_p_sampling=False,
        need_top_k_sampling=False, need_min_p_sampling=False, vocab_size=VOCAB, grammars=grammars,
        device="cpu")


def _fake_logits(rng: torch.Generator, n: int, closers: torch.Tensor) -> torch.Tensor:
    """Noise, with tokens that hold a quote or a newline favoured so strings and
    lines end: a model that knows nothing about the grammar."""
    return torch.randn(n, VOCAB, generator=rng) + closers


def _check_document(text: str, req: dict[str, Any]) -> None:
    p = plan(GenerateRequest.from_json(req))
    errors = [d for d in check_text(text, p.validation_policy()) if d.severity == "error"]
    assert not errors, (errors, text)
    yaml.safe_load(text.split("```yaml\n", 1)[1].rsplit("```", 1)[0])
    (block,) = parse(text).blocks
    assert isinstance(block, Subgraph) and block.path == p.target_path
    assert 1 <= len(block.nodes) <= p.max_nodes


@pytest.mark.parametrize("json_first", [False, True])
def test_fake_model_writes_valid_documents_in_a_mixed_batch(backend: Any, hf_tokenizer: Any,
                                                            json_first: bool) -> None:
    from agentic_llm.integrations.sglang.grammar import DSLGrammar

    reqs = [_small_request(target="/dynamic/a"), _small_request(target="/dynamic/b", max_nodes=2)]
    dsl = [_compile(backend, ("ebnf", grammar_key(r))).copy() for r in reqs]
    js = _compile(backend, ("json", SCHEMA)).copy()
    assert not isinstance(js, DSLGrammar)
    grammars: list[Any] = [js, *dsl] if json_first else [*dsl, js]
    texts = backend.compiler.tokenizer_info.token_bytes
    closers = torch.tensor([3.0 if (b'"' in t or b"\n" in t or b"}" in t) else 0.0
                            for t in texts] + [0.0] * (VOCAB - len(texts)))
    out: list[list[int]] = [[] for _ in grammars]
    rng = torch.Generator().manual_seed(1 if json_first else 2)
    for _ in range(3000):
        live = [i for i, g in enumerate(grammars) if not g.is_terminated()]
        if not live:
            break
        info = _batch_info(grammars)
        info.update_regex_vocab_mask()
        logits = _fake_logits(rng, len(grammars), closers)
        info.grammar_mask.apply(logits)
        picks = logits.argmax(dim=-1).tolist()
        for i in live:
            grammars[i].accept_token(picks[i])
            out[i].append(picks[i])
    assert all(g.is_terminated() for g in grammars)
    by_kind = dict(zip([id(g) for g in grammars], out, strict=True))
    for g, r in zip(dsl, reqs, strict=True):
        # the request ends where the document does (SGLang finishes a request whose
        # grammar is terminated)
        _check_document(backend.compiler.tokenizer_info.decode(by_kind[id(g)]), r)
    doc = json.loads(hf_tokenizer.decode([t for t in by_kind[id(js)] if t not in EOS]))
    assert set(doc) == {"city", "nights"} and isinstance(doc["nights"], int)


def test_a_token_outside_the_grammar_aborts_the_request(backend: Any) -> None:
    g = _compile(backend, ("ebnf", grammar_key(_small_request()))).copy()
    mask = g.allocate_vocab_mask(VOCAB, 1, "cpu")
    g.fill_vocab_mask(mask, 0)
    allowed = set(allowed_ids(mask[0], VOCAB).tolist())
    bad = next(t for t in range(3, VOCAB) if t not in allowed)
    with pytest.raises(ValueError, match="ERR_GRAMMAR"):
        g.accept_token(bad)
    g.fill_vocab_mask(mask, 0)  # the state is unchanged: the same mask
    assert set(allowed_ids(mask[0], VOCAB).tolist()) == allowed


def test_rollback_undoes_tokens_ignored_after_the_end(backend: Any) -> None:
    """Tokens given after the document ended are ignored, and a rollback undoes them
    before the document's own tokens."""
    base = _compile(backend, ("ebnf", grammar_key(_small_request(max_nodes=2))))
    g = base.copy()
    doc = _biased_walk(g, random.Random(4))
    g.accept_token(2)
    g.accept_token(7)  # ignored, as SGLang's xgrammar backend ignores them
    g.rollback(3)  # the two ignored tokens and the document's last one
    assert not g.is_terminated() and g.accepted == len(doc) - 1
    mask = g.allocate_vocab_mask(VOCAB, 1, "cpu")
    g.fill_vocab_mask(mask, 0)
    assert np.array_equal(mask[0].numpy(), _fresh_mask(backend.compiler, _small_request(max_nodes=2), doc[:-1]))
