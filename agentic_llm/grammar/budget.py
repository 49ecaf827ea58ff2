"""The token budget as a hard guarantee: always room left to close the document.

``TokenBudget`` prices the closing text of a position (``closing.closing_text``) in
tokens: the fewest vocabulary tokens that spell it (a shortest path over the text's
token prefixes). ``DSLMatcher`` asks it at every position:

- while ``remaining >= reserve + margin`` the mask is the grammar's own;
- once not, the matcher is *forced*: it spells the closing text it had at that
  point with that shortest tokenization, one allowed token per step (the reserve
  then falls by exactly one per token);
- ``margin`` bounds how much one token can raise the reserve (the biggest node body
  a type line can open, a new pending node, the close of a new line), so a token
  taken while unforced never leaves less than the reserve.

The reserve is an upper bound of the forced text's cost: the close of the current
line and the rest are priced apart (a concatenation of two tokenizations is one).
The same holds for bytes with ``max_bytes`` (the agenticrt block size cap): the
text written plus the closing text plus the longest token stays under the cap.
"""

from __future__ import annotations

from agentic_llm.grammar.closing import FENCE, close_line, close_rest
from agentic_llm.grammar.dataflow import MAX_KEY
from agentic_llm.grammar.graph import (
    END_LINE,
    MAX_ID,
    GraphPlan,
    GraphState,
    apply_line,
)
from agentic_llm.grammar.memo import CLOSURE_MEMO_ENTRIES, TEXT_MEMO_ENTRIES, BoundedMemo
from agentic_llm.grammar.vocab import VocabIndex

__all__ = ["TokenBudget"]

_SHARED: dict[int, tuple[VocabIndex, int, dict[str, tuple[int, tuple[int, ...]]]]] = {}
_SHARED_HOLDS: dict[int, dict[str, bool]] = {}


class TokenBudget:
    """Token prices of closing texts for one plan's matcher.

    Args:
        gp: the plan's graph layer.
        vocab: the vocabulary index (token texts as latin-1 views of their bytes).
        limit: the most output tokens (``min(max_tokens, context left)``).
        max_bytes: the most bytes of document text, or ``None``.
    """

    def __init__(self, gp: GraphPlan, vocab: VocabIndex, limit: int, max_bytes: int | None = None) -> None:
        self.gp = gp
        self.vocab = vocab
        self.limit = limit
        self.max_bytes = max_bytes
        shared = _SHARED.get(id(vocab))
        if shared is None or shared[0] is not vocab:
            # per vocabulary: the longest token, and the prices (texts recur across
            # requests: line texts, the header, the END marker)
            shared = _SHARED[id(vocab)] = (vocab, max(len(t) for t in vocab.texts),
                                           BoundedMemo(TEXT_MEMO_ENTRIES))
        self._maxlen: int = shared[1]
        self._cost: dict[str, tuple[int, tuple[int, ...]]] = shared[2]
        self._rest: dict[GraphState, int] = BoundedMemo(CLOSURE_MEMO_ENTRIES)
        self.margin = self._margin()
        # bytes one token can add to the text and to its closing text
        self.byte_margin = self._maxlen + 1024

    # -- pricing -------------------------------------------------------------------

    def spell(self, text: str) -> tuple[int, tuple[int, ...]]:
        """``(n, ids)``: the fewest tokens whose texts concatenate to ``text`` (memoized)."""
        hit = self._cost.get(text)
        if hit is not None:
            return hit
        by_text = self.vocab.by_text
        n = len(text)
        inf = n + 1
        best = [inf] * (n + 1)
        nxt = [0] * (n + 1)
        best[n] = 0
        for i in range(n - 1, -1, -1):
            top = min(n, i + self._maxlen)
            for j in range(i + 1, top + 1):
                if best[j] + 1 < best[i]:
                    tid = by_text.get(text[i:j])
                    if tid is not None:
                        best[i] = best[j] + 1
                        nxt[i] = tid
        if best[0] >= inf:
            raise ValueError(f"no tokens spell {text[:40]!r}")
        ids = []
        i = 0
        texts = self.vocab.texts
        while i < n:
            ids.append(nxt[i])
            i += len(texts[nxt[i]])
        out = (best[0], tuple(ids))
        self._cost[text] = out
        return out

    def split(self, g: GraphState, line: str) -> tuple[str, str]:
        """The closing text of the position as (close of the line, the rest)."""
        head = close_line(self.gp, g, line)
        if line + head[:-1] == END_LINE:
            return head, FENCE
        return head, close_rest(self.gp, apply_line(self.gp, g, line + head[:-1]))

    def reserve(self, g: GraphState, line: str) -> int:
        """Tokens that surely close the document from the position."""
        head = close_line(self.gp, g, line)
        if line + head[:-1] == END_LINE:
            return self.spell(head)[0] + self.spell(FENCE)[0]
        # the rest depends on the state after the line only (states compare by
        # value), which most positions of a line share
        after = apply_line(self.gp, g, line + head[:-1])
        cost = self._rest.get(after)
        if cost is None:
            cost = self._rest[after] = self._rest_cost(close_rest(self.gp, after))
        return self.spell(head)[0] + cost

    def _rest_cost(self, rest: str) -> int:
        # the rest is a run of whole lines: priced line by line (memoized per line),
        # an upper bound of its price as one text
        total = 0
        for ln in rest.splitlines(keepends=True):
            total += self.spell(ln)[0]
        return total

    def line_start_reserve(self, g: GraphState) -> int:
        """``reserve`` at a line start, memoized on the line state."""
        hit = g.memo.get("reserve0")
        if hit is None or hit[0] is not self.gp:
            hit = g.memo["reserve0"] = (self.gp, self.reserve(g, ""))
        return hit[1]  # type: ignore[no-any-return]

    # -- the margin ------------------------------------------------------------------

    def _margin(self) -> int:
        """How much one token can raise the reserve, bounded from above."""
        gp = self.gp
        t = gp.target + "/"
        decl = (self.spell('  - id: "')[0] + MAX_ID + self.spell('"\n')[0]
                + self.spell("    type: end\n")[0])
        longest_ref = max([len(x) for x in gp.externals] + [len(t) + MAX_ID])
        ref_close = longest_ref + 4
        # a tool argument may also read an earlier output key (dataflow.py)
        var = max([len(v) for v in gp.variables] + [MAX_KEY if gp.tools else 0])
        string_close = 8 + var + 4
        bodies = [self.spell(b)[0] for b in _BODIES.values()]
        for name, keys in gp.tools.items():
            text = f'    tool: "{name}"\n    arguments:\n'
            text += "".join(f'      "{k}": "x"\n' for k, r in keys if r)
            bodies.append(self.spell(text + '    output_keys: ["x"]\n')[0])
        # one token opens at most one line whose close it leaves to pay, and at most
        # one new pending node unless some token holds a whole target path (then a
        # token could end one fresh id and start another)
        decls = 2 if self._token_holds(t) else 1
        return max(bodies) + decls * decl + max(ref_close, string_close) + 8

    def _token_holds(self, text: str) -> bool:
        """Whether some vocabulary token contains ``text`` (memoized per vocabulary)."""
        memo = _SHARED_HOLDS.get(id(self.vocab))
        if memo is None:
            memo = _SHARED_HOLDS[id(self.vocab)] = BoundedMemo(TEXT_MEMO_ENTRIES)
        hit = memo.get(text)
        if hit is None:
            hit = memo[text] = len(text) <= self._maxlen and any(text in x for x in self.vocab.texts)
        return hit


# the smallest body of each node type, priced for the margin
_BODIES = {
    "assign": '    assign:\n      "x": "x"\n',
    "assert": '    condition: "{{ x }}"\n',
    "fork": "    fork:\n      branches: []\n",
    "join": "    join:\n      wait_for: []\n",
    "llm_call": '    prompt_template: "x"\n    output_keys: ["x"]\n',
    "generate_subgraph": '    prompt_template: "x"\n    output_keys: ["x"]\n',
    "dsl_call": '    prompt_template: "x"\n    llm_tool_name: "x"\n    output_keys: ["x"]\n',
    "codelet_call": '    runtime: "x"\n    code: "x"\n',
}
