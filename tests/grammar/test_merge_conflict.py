"""Join merge conflicts: the masks never allow a ``join`` whose ``wait_for`` lists two
local nodes that write the same context key.

The grammar never writes ``merge_strategy``, so every join merges with
``error_on_conflict`` and the validator reports ERR_CTX_MERGE_CONFLICT when two of its
sources write one key (``output_keys`` entries, ``assign`` keys). The graph layer
records the keys each node writes and drops, from a ``wait_for`` list, every source
whose keys meet those of the sources listed before it. ``wait_for`` names declared
nodes only (never a pending id or the node being written), so a source's keys are
final when the join lists it: no key written later can join a join's group.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import xgrammar as xgr

from agentic_llm.dsl import (
    Assign,
    Document,
    Join,
    LlmCall,
    Start,
    Subgraph,
    ToolCall,
    check_text,
    dumps,
    parse,
)
from agentic_llm.dsl.validate.graph import written_keys
from agentic_llm.errors import ErrorCode
from agentic_llm.grammar import GraphPlan, VocabIndex
from agentic_llm.grammar.graph import apply_line, initial_state, line_ok, slot
from agentic_llm.planner import GenerateRequest, plan

T = "/dynamic/step_89"
# the shape of bench/validity_requests.jsonl line 28, where a greedy decode made two
# `notify` calls (both writing `ack`) and joined them
REQUEST = {
    "target_path": T, "prompt": "notify two channels, then go on",
    "context": {"available_vars": {"city": "string"}},
    "tools": [{"name": "notify", "arguments": [{"name": "channel"}, {"name": "message"}], "output": "ack"},
              {"name": "weather", "arguments": [{"name": "city"}, {"name": "date", "required": False}],
               "output": "forecast"}],
    "library": [], "budget": {"max_nodes": 10, "max_tokens": 2048},
}
PLAN = plan(GenerateRequest.from_json(REQUEST))


def _errors(text: str, p=PLAN) -> list:  # type: ignore[no-untyped-def]
    return [d for d in check_text(text, p.validation_policy()) if d.severity == "error"]


def _notify(nid: str, key: str, nxt: tuple[str, ...] | None = None) -> ToolCall:
    return ToolCall(id=nid, tool="notify", arguments={"channel": "ops", "message": "hi {{ city }}"},
                    output_keys=(key,), next=nxt)


def _doc(nodes: list) -> str:  # type: ignore[type-arg]
    return dumps(Document((Subgraph(path=T, entry="start", nodes=tuple(nodes)),)))


def _sources_first(k1: str, k2: str) -> str:
    return _doc([
        Start(id="start", next=(f"{T}/a", f"{T}/b")),
        _notify("a", k1, (f"{T}/j",)),
        Assign(id="b", assign={"note": "x", k2: "y"}, next=(f"{T}/j",)),
        Join(id="j", wait_for=(f"{T}/a", f"{T}/b"), merge_strategy=None),
    ])


def _feed(compiler, text: str, *, masks: bool = True) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    """Feed ``text`` token by token (checking, with ``masks``, that each token's mask
    bit agrees with ``accept_token``; ``verify`` compares each mask with
    ``fill_reference``). Returns (accepted and complete, text before the first
    rejected token)."""
    ti = compiler.tokenizer_info
    m = compiler.matcher_for(PLAN, verify=True)
    bm = xgr.allocate_token_bitmask(1, ti.vocab_size)
    ids = ti.encode(text)
    for i, t in enumerate(ids):
        if masks:
            m.fill_next_token_bitmask(bm, 0)
            allowed = bool((int(bm[0, t // 32]) >> (t % 32)) & 1)
        ok = m.accept_token(t)
        if masks:
            assert allowed == ok, (i, ti.decode(ids[:i])[-120:])
        if not ok:
            return False, ti.decode(ids[:i])
    return m.is_terminated(), text


def test_sources_declared_before_the_join(compiler) -> None:  # type: ignore[no-untyped-def]
    bad = _sources_first("ack", "ack")
    assert [d.code for d in _errors(bad)] == [ErrorCode.CTX_MERGE_CONFLICT]
    ok, before = _feed(compiler, bad)
    assert not ok
    # rejected inside the second wait_for element: `b` writes `ack` like `a`
    line = before.rsplit("\n", 1)[1]
    assert line.startswith(f'      wait_for: ["{T}/a", "'), line
    assert f"{T}/b" not in line
    good = _sources_first("ack", "other")
    assert _errors(good) == []
    assert _feed(compiler, good) == (True, good)


def test_join_written_before_its_sources_is_never_allowed(compiler) -> None:  # type: ignore[no-untyped-def]
    """The other order (sources pending when the join lists them) is outside the
    profile whatever the keys: ``wait_for`` names declared nodes only, so the keys of
    every source are known when the join lists it."""
    for k2, n_errors in (("ack", 1), ("other", 0)):
        text = _doc([
            Start(id="start", next=(f"{T}/j", f"{T}/a", f"{T}/b")),
            Join(id="j", wait_for=(f"{T}/a", f"{T}/b"), merge_strategy=None),
            _notify("a", "ack"),
            _notify("b", k2),
        ])
        assert len(_errors(text)) == n_errors
        ok, before = _feed(compiler, text, masks=False)
        assert not ok
        assert before.rsplit("\n", 1)[1].startswith('      wait_for: ["'), before[-200:]


def test_a_node_in_several_joins(compiler) -> None:  # type: ignore[no-untyped-def]
    """Each join's group is checked on its own: `a` may join `b` and, elsewhere, `c`,
    but `c` and `b` never meet in one list when they share a key."""
    def doc(second: tuple[str, ...]) -> str:
        return _doc([
            Start(id="start", next=(f"{T}/a", f"{T}/b", f"{T}/c", f"{T}/j1", f"{T}/j2")),
            _notify("a", "ack"),
            LlmCall(id="b", prompt_template="sum up", output_keys=("text", "extra")),
            Assign(id="c", assign={"text": "{{ city }}"}),
            Join(id="j1", wait_for=(f"{T}/a", f"{T}/b")),
            Join(id="j2", wait_for=tuple(f"{T}/{s}" for s in second)),
        ])
    for second, valid in ((("c", "a"), True), (("j1", "c"), True), (("a", "c", "b"), False),
                          (("b", "a", "c"), False), (("start", "c", "b"), False)):
        text = doc(second)
        assert (not _errors(text)) == valid, second
        ok, _before = _feed(compiler, text, masks=not valid)
        assert ok == valid, second


def _lines_state(gp: GraphPlan, text: str):  # type: ignore[no-untyped-def]
    """The graph state at the start of the last line of ``text`` and that line."""
    g = initial_state()
    *full, last = text.split("\n")
    for line in full:
        assert line_ok(gp, g, line, True), line
        g = apply_line(gp, g, line)
    return g, last


def test_slot_offers_only_compatible_sources() -> None:
    gp = GraphPlan.from_plan(PLAN)
    head = _sources_first("ack", "ack").split('      wait_for: ["', 1)[0]
    g, line = _lines_state(gp, head + f'      wait_for: ["{T}/a", "{T}/')
    assert slot(gp, g, line).texts == ('start"',)  # `a` is listed, `b` clashes
    assert not line_ok(gp, g, line + 'b"', False)
    # after `a` only `start` is left: a separator still leads somewhere
    g, line = _lines_state(gp, head + f'      wait_for: ["{T}/a"')
    assert set(slot(gp, g, line).texts) == {", \"", "]"}
    # after `a` and `start` nothing is left: only the closing bracket
    g, line = _lines_state(gp, head + f'      wait_for: ["{T}/a", "{T}/start"')
    assert slot(gp, g, line).texts == ("]",)
    assert not line_ok(gp, g, line + ",", False)
    # the list's first element may be any declared node
    g, line = _lines_state(gp, head + f'      wait_for: ["{T}/')
    assert sorted(slot(gp, g, line).texts) == ['a"', 'b"', 'start"']


@pytest.mark.parametrize("max_string", [None, 8])
def test_closing_tokens_are_decided_per_source(compiler, max_string: int | None) -> None:  # type: ignore[no-untyped-def]
    """Whether a separator may follow a wait_for element depends on which source it
    names: after `p` the list may go on (`e` is left), after `p_` it may not (`p`
    and `e` both clash with it). The tokens `",` and `_",` close the element with
    the same tail, so the fast path must not share their verdict."""
    t = "/dynamic/x"
    p = plan(GenerateRequest.from_json({
        "target_path": t, "prompt": "x", "context": {"available_vars": {}}, "tools": [], "library": [],
        "node_types": ["assign", "join"], "budget": {"max_nodes": 8, "max_tokens": 2048}}))
    text = dumps(Document((Subgraph(path=t, entry="start", nodes=(
        Start(id="start", next=tuple(f"{t}/{x}" for x in ("p", "p_", "e", "j"))),
        Assign(id="p", assign={"k": "one"}), Assign(id="p_", assign={"k": "one", "m": "two"}),
        Assign(id="e", assign={"m": "one"}), Join(id="j", wait_for=(f"{t}/start", f"{t}/p")))),)))
    prefix = text.split('wait_for: ["', 1)[0] + f'wait_for: ["{t}/start", "{t}/p'
    vocab = compiler.vocab
    m = compiler.matcher_for(p, max_string=max_string, verify=True)
    assert m.accept_string(prefix)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    m.fill_next_token_bitmask(bm, 0)  # verify: equal to fill_reference
    allowed = {vocab.texts[i] for i in VocabIndex.ids_in(bm[0].numpy().view(np.uint32))}
    assert {'"', '",', '"]', '_"'} <= allowed
    assert '_",' in vocab.texts and '_",' not in allowed


@pytest.mark.parametrize("seed", [0, 1])
def test_random_join_documents_accepted_iff_valid(compiler, seed: int) -> None:
    """Documents with a few key writers over a tiny key set and joins over random
    subsets of them: the matcher accepts exactly those the validator accepts."""
    rng = random.Random(seed)
    seen = {True: 0, False: 0}
    for _ in range(12):
        n = rng.randint(2, 4)
        writers = [f"w{i}" for i in range(n)]
        joins = [f"j{i}" for i in range(rng.randint(1, 2))]
        nodes: list = [Start(id="start", next=tuple(f"{T}/{x}" for x in writers + joins))]  # type: ignore[type-arg]
        for w in writers:
            keys = tuple(rng.sample(["a", "b", "c"], rng.randint(1, 2)))
            kind = rng.choice(["tool", "assign", "llm"])
            if kind == "tool":
                nodes.append(ToolCall(id=w, tool="weather", arguments={"city": "x"}, output_keys=keys))
            elif kind == "assign":
                nodes.append(Assign(id=w, assign={k: "v" for k in keys}))
            else:
                nodes.append(LlmCall(id=w, prompt_template="p", output_keys=keys))
        for j in joins:
            srcs = rng.sample(writers + ["start"], rng.randint(1, min(3, n + 1)))
            nodes.append(Join(id=j, wait_for=tuple(f"{T}/{s}" for s in srcs)))
        text = _doc(nodes)
        errors = _errors(text)
        assert all(d.code == ErrorCode.CTX_MERGE_CONFLICT for d in errors), errors
        ok, _before = _feed(compiler, text, masks=bool(errors))
        assert ok == (not errors), text
        seen[ok] += 1
    assert seen[True] and seen[False], seen


# -- random walks, steered toward joins over key writers ----------------------------


class _Steer:
    """Token preferences that make a random walk write short keys over ``a``/``b``
    (so that keys clash), long reference lists over short fresh ids, key-writing
    nodes first and joins later."""

    def __init__(self, vocab: VocabIndex) -> None:
        texts = vocab.texts
        self.texts = texts

        def ids(pred) -> np.ndarray:  # type: ignore[no-untyped-def]
            return np.array(sorted(i for i, t in enumerate(texts) if t and pred(t)), dtype=np.int64)

        self.keys = ids(lambda t: t in ("a", "b", '"', '"]', '",', '", "', '["', "[", ' ["', " ["))
        self.seps = ids(lambda t: t in (",", ", ", ', "'))
        self.short = ids(lambda t: len(t) == 1 and t.islower() or t in ('"', '"]', '",', '", "'))
        self.early = ids(lambda t: any(w.startswith(t) for w in ("assign", "tool_call", "llm_call")))
        self.late = ids(lambda t: "join".startswith(t))

    @staticmethod
    def _in(row: np.ndarray, q: np.ndarray) -> np.ndarray:
        return q[((row[q >> 5] >> (q & 31).astype(np.uint32)) & 1).astype(bool)]

    def prefer(self, line: str, row: np.ndarray, ids: np.ndarray, target: str, count: int) -> np.ndarray:
        if line.startswith("    type: "):
            return self._in(row, self.late if count >= 4 else self.early)
        if line.startswith(("    output_keys: ", '      "')) or len(line) >= 6 and not line.strip():
            return self._in(row, self.keys)
        for pre in ("    next: ", "      wait_for: "):
            if not line.startswith(pre):
                continue
            rest = line[len(pre):]
            if rest.count('"') % 2 == 0:
                return self._in(row, self.seps) if rest else ids[:0]
            e, t = rest[rest.rfind('"') + 1:], target + "/"
            if e == t and pre == "      wait_for: ":  # a source other than `start`
                return np.array([i for i in ids.tolist() if self.texts[i][:1] != "s"], dtype=np.int64)
            if e.startswith(t):
                return self._in(row, self.short)
            if t.startswith(e):
                return np.array([i for i in ids.tolist()
                                 if t.startswith(e + self.texts[i])
                                 or (e + self.texts[i]).startswith(t) and len(e + self.texts[i]) <= len(t) + 1],
                                dtype=np.int64)
        return ids[:0]


def _steered_walk(compiler, m, steer: _Steer, rng: random.Random, target: str,  # type: ignore[no-untyped-def]
                  max_tokens: int = 2500) -> str | None:
    ti = compiler.tokenizer_info
    bm = xgr.allocate_token_bitmask(1, ti.vocab_size)
    stops = set(ti.stop_token_ids)
    out = bytearray()
    for _ in range(max_tokens):
        m.fill_next_token_bitmask(bm, 0)
        row = bm[0].numpy().view(np.uint32)
        ids = VocabIndex.ids_in(row)
        ids = ids[ids < ti.vocab_size]
        assert ids.size, ("dead end", out.decode("utf-8", "replace")[-300:])
        line = m.text
        p = 0.97 if line.startswith(("    output_keys: ", '      "', "    type: ")) or (
            len(line) >= 6 and not line.strip()) else 0.85
        pref = steer.prefer(line, row, ids, target, m.node_count) if rng.random() < p else ids[:0]
        tid = int(pref[rng.randrange(pref.size)]) if pref.size else int(ids[rng.randrange(ids.size)])
        assert m.accept_token(tid)
        if tid in stops:
            return out.decode("utf-8")
        out += ti.token_bytes[tid]
    return None


def test_steered_random_walks_never_merge_conflicting_keys(compiler) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(1)
    steer = _Steer(compiler.vocab)
    multi = narrowed = done = 0
    for i in range(12):
        req = {"target_path": f"/dynamic/m{i}", "prompt": "x",
               "context": {"available_vars": {"x": "string"}},
               "tools": [{"name": "t", "arguments": [{"name": "q", "required": False}]}], "library": [],
               "node_types": ["assign", "tool_call", "join"] + (["llm_call"] if i % 2 else []),
               "budget": {"max_nodes": rng.randint(4, 9), "max_tokens": 4096},
               # the spec target: strings of one or two characters are often ones the
               # agenticrt target refuses, which would steer these walks elsewhere
               "target_runtime": "spec"}
        p = plan(GenerateRequest.from_json(req))
        text = _steered_walk(compiler, compiler.matcher_for(p, max_string=rng.choice([1, 2]), verify=True),
                             steer, rng, p.target_path)
        if text is None:
            continue
        done += 1
        assert not _errors(text, p), text
        (block,) = parse(text).blocks
        assert isinstance(block, Subgraph)
        nodes = block.nodes
        by_id = {n.id: n for n in nodes}
        order = [n.id for n in nodes]
        t = p.target_path + "/"
        for n in nodes:
            if not isinstance(n, Join):
                continue
            srcs = [w[len(t):] for w in n.wait_for or ()]
            keys = [written_keys(by_id[s]) for s in srcs]
            multi += sum(1 for k in keys if k) >= 2
            # a node declared before the join whose keys clash with a listed source:
            # the masks dropped it (or it was never picked)
            listed = set().union(*keys)
            narrowed += any(b not in srcs and written_keys(by_id[b]) & listed
                            for b in order[:order.index(n.id)])
    assert done >= 9
    assert multi >= 1 and narrowed >= 1, (multi, narrowed)
