"""Matcher API: jump-forward, rollback, termination, tool masking, check/sample CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import xgrammar as xgr

from agentic_llm.benchmarks.grammar import realistic_documents
from agentic_llm.cli.main import main
from agentic_llm.engine.constraints import TokenMatcher
from agentic_llm.grammar import VocabIndex
from agentic_llm.planner import GenerateRequest, plan


def _docs():  # type: ignore[no-untyped-def]
    return [(plan(GenerateRequest.from_json(r)), d) for r, d in realistic_documents()]


def test_protocol(compiler) -> None:  # type: ignore[no-untyped-def]
    p, _ = _docs()[0]
    assert isinstance(compiler.matcher_for(p), TokenMatcher)


def test_realistic_documents_accepted_and_terminate(compiler) -> None:  # type: ignore[no-untyped-def]
    for p, doc in _docs():
        m = compiler.matcher_for(p)
        for t in compiler.tokenizer_info.encode(doc):
            assert m.accept_token(t)
        assert m.is_terminated()
        assert m.node_count == doc.count("  - id: ")


def test_jump_forward_is_forced_text(compiler) -> None:  # type: ignore[no-untyped-def]
    enc = compiler.tokenizer_info.encode
    for p, doc in _docs():
        m = compiler.matcher_for(p)
        pos = jumped = 0
        while pos < len(doc):
            jf = m.find_jump_forward_string()
            if jf:
                assert doc.startswith(jf, pos), (pos, jf)
                assert m.accept_string(jf)
                pos += len(jf)
                jumped += len(jf)
                continue
            tid = enc(doc[pos:])[0]
            assert m.accept_token(tid)
            pos += len(compiler.tokenizer_info.token_bytes[tid].decode())
        assert m.is_terminated()
        assert jumped / len(doc) > 0.3


def test_rollback_restores_state(compiler) -> None:  # type: ignore[no-untyped-def]
    p, doc = _docs()[1]
    ids = compiler.tokenizer_info.encode(doc)
    m = compiler.matcher_for(p)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    for t in ids[:80]:
        assert m.accept_token(t)
    m.fill_next_token_bitmask(bm)
    before = bm.clone()
    for t in ids[80:120]:
        assert m.accept_token(t)
    m.rollback(40)
    m.fill_next_token_bitmask(bm)
    assert bool((bm == before).all())
    for t in ids[80:]:
        assert m.accept_token(t)
    assert m.is_terminated()


def test_rejects_ungranted_tool_and_counts_attempts(compiler) -> None:  # type: ignore[no-untyped-def]
    p, doc = _docs()[0]
    bad = doc.replace('"rank"', '"rank_all"')
    m = compiler.matcher_for(p)
    ids = compiler.tokenizer_info.encode(bad)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    ok = True
    for t in ids:
        m.fill_next_token_bitmask(bm)
        if not m.accept_token(t):
            ok = False
            break
    assert not ok
    assert m.masked_tool_attempts >= 1


def test_mask_never_empty_before_end(compiler) -> None:  # type: ignore[no-untyped-def]
    p, _ = _docs()[0]
    rng = random.Random(3)
    m = compiler.matcher_for(p, max_string=16)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    while not m.is_terminated():
        m.fill_next_token_bitmask(bm)
        ids = VocabIndex.ids_in(bm[0].numpy().view(np.uint32))
        assert ids.size
        assert m.accept_token(int(ids[rng.randrange(ids.size)]))


def test_cli_check_and_sample(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    req, doc = realistic_documents()[0]
    rp = tmp_path / "req.json"
    rp.write_text(json.dumps(req))
    good = tmp_path / "good.md"
    good.write_text(doc)
    bad = tmp_path / "bad.md"
    bad.write_text(doc.replace('"web_search"', '"web_crawl"'))
    assert main(["grammar", "check", "--request", str(rp), str(good)]) == 0
    assert main(["grammar", "check", "--request", str(rp), str(bad)]) == 1
    assert "rejected at line" in capsys.readouterr().out
    assert main(["grammar", "check", "--request", str(rp), str(tmp_path / "missing.md")]) == 2
    assert main(["grammar", "sample", "--request", str(rp), "-n", "2", "--seed", "1", "--check",
                 "--max-string", "12"]) == 0
    assert "AgenticDSL" in capsys.readouterr().out
    assert main(["plan", "--request", str(rp), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target_path"] == "/dynamic/plan_1"


def test_mask_never_allows_a_full_length_id_that_is_taken(compiler) -> None:  # type: ignore[no-untyped-def]
    """A fresh id typed to MAX_ID - 1 characters may not be finished on an id already
    referenced on the same line: every token the mask allows must be accepted."""
    from agentic_llm.grammar.vocab import MAX_ID

    p = plan(GenerateRequest.from_json({"target_path": "/dynamic/p", "prompt": "x",
                                         "budget": {"max_nodes": 8, "max_tokens": 512}}))
    m = compiler.matcher_for(p)
    taken = "a" * (MAX_ID - 1) + "2"
    head = ('### AgenticDSL `/dynamic/p`\n```yaml\n# --- BEGIN AgenticDSL ---\n'
            'graph_type: subgraph\nentry: "start"\nnodes:\n  - id: "start"\n    type: start\n'
            f'    next: ["/dynamic/p/{taken}", "/dynamic/p/{taken[:-1]}')
    for t in compiler.tokenizer_info.encode(head):
        assert m.accept_token(t)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    m.fill_next_token_bitmask(bm, 0)
    allowed = np.flatnonzero(np.unpackbits(bm[0].numpy().view(np.uint8), bitorder="little"))
    allowed = allowed[allowed < compiler.tokenizer_info.vocab_size]
    assert allowed.size > 0
    two = compiler.tokenizer_info.encode("2")
    assert len(two) == 1 and two[0] not in set(allowed.tolist())
    for t in allowed.tolist():
        assert m.accept_token(t), t
        m.rollback(1)


def test_check_rejects_an_unterminated_assign_key_without_crashing(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A line that ends inside an assign key is refused by xgrammar; the graph layer's
    line check must refuse it too rather than build a state from it (it raised
    ValueError before xgrammar was asked)."""
    req, doc = realistic_documents()[1]  # the document with an ``assign`` node
    cut = doc.index('      "shortlist"')
    bad = tmp_path / "bad.md"
    bad.write_text(doc[:cut] + '      "shortlist\')\n' + doc[cut:])
    rp = tmp_path / "req.json"
    rp.write_text(json.dumps(req))
    assert main(["grammar", "check", "--request", str(rp), str(bad)]) == 1
    assert "rejected at line" in capsys.readouterr().out


def test_mutated_documents_are_refused_or_accepted_never_raise(compiler) -> None:  # type: ignore[no-untyped-def]
    """Arbitrary edits of good documents (quotes, braces, brackets, newlines, indents
    inserted, deleted or swapped in) fed token by token, masks filled at every
    position: each token is accepted or refused, nothing raises, and a token the
    matcher accepts was in its mask."""
    rng = random.Random(5)
    pieces = list('"\\{}[]:, \n-_/abz09\'é') + ["{{ city }}", '", "', '"]\n', "\n    ", '  - id: "', "{{ ", " }}"]
    docs = _docs()
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    refused = 0
    for _ in range(150):
        p, doc = rng.choice(docs)
        s = list(doc)
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(s))
            op = rng.random()
            if op < 0.4:
                s.insert(k, rng.choice(pieces))
            elif op < 0.7:
                del s[k]
            else:
                s[k] = rng.choice(pieces)
        m = compiler.matcher_for(p)
        for t in compiler.tokenizer_info.encode("".join(s)):
            m.fill_next_token_bitmask(bm, 0)
            allowed = bool((int(bm[0, t >> 5]) >> (t & 31)) & 1)
            ok = m.accept_token(t)
            assert ok == allowed, (t, m.text)
            if not ok:
                refused += 1
                break
        m.is_terminated()
    assert refused > 50  # most edits break the document somewhere
