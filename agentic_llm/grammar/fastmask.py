"""The fast mask paths of ``DSLMatcher`` (docs/grammar.md, "How a mask is computed
fast"): finite-text closures without xgrammar, xgrammar rows from the mask cache
narrowed by the graph layer, and grouped graph checks. Every path equals
``DSLMatcher.fill_reference``; ``verify`` mode compares them at each position.

Size: past the 500-line guideline because ``_fill_graph`` and ``_closers`` share the
per-entry memos and the closer index (``_CloserIndex``) kept on a mask-cache entry;
the string-opening groups already live in ``quotesplit.py``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from agentic_llm.grammar.graph import (
    GraphPlan,
    GraphState,
    Slot,
    ends_line,
    ref_context,
    slot,
    template_vars,
)
from agentic_llm.grammar.maskcache import MaskCache, MaskEntry
from agentic_llm.grammar.quotesplit import (
    open_string,
    quote_rejects,
    shared_verdicts,
    string_rejects,
)
from agentic_llm.grammar.vocab import MAX_ID, VocabIndex, pack_ids

__all__ = ["FastMask", "fresh_id", "fresh_tail"]

_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
_ID_CHARS = _LETTERS | frozenset("0123456789_")


def fresh_id(text: str) -> bool:
    """A complete fresh node id: a letter, then id characters, at most MAX_ID long."""
    return 0 < len(text) <= MAX_ID and text[0] in _LETTERS and set(text) <= _ID_CHARS


def fresh_tail(tail: str) -> bool:
    """A token tail that starts a fresh node id (a letter, then id characters)."""
    return 0 < len(tail) < MAX_ID and tail[0] in _LETTERS and set(tail) <= _ID_CHARS




def _or_ids(row: np.ndarray, ids: list[int] | np.ndarray) -> None:
    """Set the bits of token ``ids`` in the packed ``row`` (duplicates allowed)."""
    if len(ids) <= 48:
        # a few ids: item by item through a memoryview (one numpy call costs as much
        # as a dozen of these)
        mv = row.data
        for tid in ids:
            tid = int(tid)
            mv[tid >> 5] |= 1 << (tid & 31)
        return
    a = np.asarray(ids, dtype=np.int64)
    np.bitwise_or.at(row, a >> 5, np.left_shift(np.uint32(1), (a & 31).astype(np.uint32)))


#: row views of recently seen bitmask tensors, by (tensor id, row): each entry holds
#: its tensor, so an id is never reused while its entry lives (bounded, a few)
_ROW_VIEWS: dict[tuple[int, int], tuple[Any, ...]] = {}


def _clear_ids(row: np.ndarray, ids: list[int] | set[int]) -> None:
    """Clear the bits of token ``ids`` in the packed ``row``."""
    mv = row.data
    for tid in ids:
        mv[tid >> 5] &= ~(1 << (tid & 31)) & 0xFFFFFFFF


class FastMask:
    """Mixin of ``DSLMatcher``: the mask computations behind its fast paths."""

    _g: GraphState
    _line: str
    _gp: GraphPlan
    _vocab: VocabIndex
    _cache: MaskCache | None
    _rowview: tuple[Any, ...] | None
    _vbuf: torch.Tensor | None
    # text -> its slot, and ("at", text) -> the position after it (``_vars_after``)
    _after_memo: tuple[Any, str, dict[Any, Any]]
    _free_row: tuple[GraphState, str, np.ndarray] | None
    masked_tool_attempts: int

    # provided by DSLMatcher
    _advance: Callable[[GraphState, str, str], tuple[GraphState, str] | None]
    _ok: Callable[[int], bool]
    _free_rejects: Callable[..., list[int]]
    _tool_line: Callable[[], bool]
    fill_reference: Callable[[torch.Tensor, int], None]

    def _closure_through(self, sl: Slot, limit: int = 24) -> tuple[np.ndarray, np.ndarray] | None:
        """Like ``prefix_closure`` for texts that tokens run past: such a text is
        extended by the finite texts the graph allows right after it (repeatedly),
        and the closure of the extended texts is the allowed set. ``None`` when what
        follows is not finite text, or after ``limit`` extensions."""
        if self._gp.max_string is not None:
            # the string cap of random walks closes a string in the slot but not in
            # the line check that defines the mask: no extension through it
            return None
        v = self._vocab
        ext: list[str] = []
        work = [a or "\n" for a in sl.texts]
        # In a type, node id or tool name each text is a whole rest of the value and
        # only a newline follows it (``ends_line``); the slot after it would list
        # the other values' remainders, which are texts of this slot already, so a
        # text is extended by the newline directly instead of through ``_slot_after``.
        direct: set[str] = set(work) if ends_line(self._gp, self._g, self._line) else set()
        while work:
            t = work.pop()
            if not v.has_longer(t):
                ext.append(t)
                continue
            if t in direct and t != "\n":
                direct.discard(t)
                work.append(t + "\n")
                continue
            limit -= 1
            after = self._slot_after(t) if limit >= 0 else None
            if after is None:
                return None
            sl2, ends = after
            if sl2.free or sl2.fresh >= 0 or sl2.fresh_entry or not sl2.texts:
                return None
            if ends:
                # a type, id or tool name: a newline follows each text
                work += [t + b + "\n" if b else t + "\n" for b in sl2.texts]
            else:
                work += [t + (b or "\n") for b in sl2.texts]
        return v.prefix_closure(tuple(ext))

    def _slot_after(self, t: str) -> tuple[Slot, bool] | None:
        """The slot after the text ``t`` from the current position and whether its
        texts end the line (``None``: ``t`` is not allowed or ends the document).
        Memoized for the position: the closure and the free-field test both ask."""
        memo = self._after_memo
        if memo[0] is not self._g or memo[1] != self._line:
            memo = self._after_memo = (self._g, self._line, {})
        if t in memo[2]:
            return memo[2][t]  # type: ignore[no-any-return]
        nxt = self._advance(self._g, self._line, t)
        out = None if nxt is None or nxt[0].done else (
            slot(self._gp, nxt[0], nxt[1]), ends_line(self._gp, nxt[0], nxt[1]))
        memo[2][t] = out
        memo[2][("at", t)] = nxt  # the position itself (``_vars_after``)
        return out

    def _vars_after(self, a: str) -> frozenset[str]:
        """The template names the position after the text ``a`` may read (``a`` is an
        allowed text: ``_slot_after`` found a slot after it)."""
        memo = self._after_memo
        key = ("at", a)
        if memo[0] is self._g and memo[1] == self._line and key in memo[2]:
            nxt = memo[2][key]
        else:
            nxt = self._advance(self._g, self._line, a)
        if nxt is None:
            return self._gp.variables
        return template_vars(self._gp, nxt[0], nxt[1])

    def _free_after(self, a: str) -> int:
        """1 when the text ``a`` leads into a free field (no template open, not an
        assign key): there the graph checks only braces and line ends; 2 when it
        also checks quotes (a string the target runtime could misread); else 0."""
        after = self._slot_after(a)
        if after is None or not after[0].free:
            return 0
        if after[0].close_check:
            return 2
        return 0 if after[0].check_quotes else 1

    def _row_view(self, bitmask: torch.Tensor, index: int) -> np.ndarray:
        """Row ``index`` of ``bitmask`` as uint32 words (the view is reused while the
        engine keeps passing the same tensor)."""
        rv = self._rowview
        if rv is not None and rv[0] is bitmask and rv[1] == index and rv[2] == bitmask.data_ptr():
            return rv[3]  # type: ignore[no-any-return]
        # the views are also shared between matchers: a new request's first mask
        # into the engine's batch tensor skips the tensor indexing (tens of us)
        key = (id(bitmask), index)
        rv = _ROW_VIEWS.get(key)
        if rv is None or rv[0] is not bitmask or rv[2] != bitmask.data_ptr():
            if len(_ROW_VIEWS) >= 16:
                _ROW_VIEWS.clear()
            rv = _ROW_VIEWS[key] = (bitmask, index, bitmask.data_ptr(), bitmask[index].numpy().view(np.uint32))
        self._rowview = rv
        return rv[3]  # type: ignore[no-any-return]

    def _fill_graph(self, row: np.ndarray, entry: MaskEntry, sl: Slot, key: Any) -> None:
        """``row`` := xgrammar's cached row for this class, narrowed by the graph layer.

        Equal to ``fill_reference`` (the ``verify`` mode checks it); cheaper because
        every candidate list derived from the xgrammar row is memoized on the entry
        and the graph's exact checks share one next-line state per position.
        """
        xrow = entry.row
        memo = entry.memo  # bounded (maskcache.MaskEntry)
        v = self._vocab
        gp = self._gp
        if sl.free:
            np.bitwise_and(xrow, v.brace_drop_bits(template_vars(gp, self._g, self._line)), out=row)
            strict = gp.strict_strings
            ck = ("free", sl.check_quotes, strict)
            cand = memo.get(ck)
            if cand is None:
                sel = ((v.newline_bits | v.quote_bits) if sl.check_quotes
                       else (v.newline_bits | v.multi_quote_bits) if strict else v.newline_bits)
                cand = memo[ck] = v.ids_in(xrow & sel).tolist()
            if cand:
                # Outside an assign key the verdicts depend only on the line's state
                # and the class (the line's fixed part is written, its free part has
                # no open template), so they are shared by the line's free positions.
                rk = ("rejects", key)
                bad = None if sl.check_quotes else self._g.memo.get(rk)
                if bad is None:
                    # at strings the runtime reads back: quote tokens in groups
                    bad = string_rejects(memo, ck, v.texts, cand, gp, self._g, self._line, self._ok, row)
                    if bad is None:
                        bad = self._free_rejects(cand, sl.check_quotes, not sl.close_check)
                    if not sl.check_quotes:
                        self._g.memo[rk] = bad
                _clear_ids(row, bad)
            if not sl.check_quotes and key[-1] == "s" and key[-2] in ("str", "val") and gp.max_string is None:
                # inside a string: the mask of every later position of this string
                # in the same class (see ``accept_token``)
                self._free_row = (self._g, self._line, row.copy())
            return
        allowed: list[int] = []
        keep: np.ndarray | None = None
        texts = v.texts
        # inside a reference element every token with a quote closes the element:
        # those are decided together by _closers, not one by one
        rc = ref_context(gp, self._g, self._line)
        narrowed = False  # a token of xgrammar's row was dropped outside ``allowed``
        for a in (t if t else "\n" for t in sl.texts):
            pk = ("pre", a)
            pre = memo.get(pk)
            if pre is None:
                xm = xrow.data
                pre = memo[pk] = [tid for tid in v.prefixes_of(a) if (xm[tid >> 5] >> (tid & 31)) & 1]
            allowed += pre
            fresh_slash = a == "/" and a == sl.fresh_entry
            lk = ("long", a, fresh_slash)
            longer = memo.get(lk)
            if longer is None:
                # most texts of a reference slot (an element's rest) start no token
                # longer than themselves: one memoized bisect instead of array work
                arr = v.longer_with_prefix(a, xrow) if v.has_longer(a) else np.zeros(0, dtype=np.int64)
                if fresh_slash and arr.size:
                    # "/" + id characters start a fresh id and pass wholesale (below);
                    # only tokens that also close it (hold a quote) need the exact check
                    shift = (arr & 31).astype(np.uint32)
                    in_ids = ((v.slash_id_bits[arr >> 5] >> shift) & 1).astype(bool)
                    quoted = ((v.quote_bits[arr >> 5] >> shift) & 1).astype(bool)
                    arr = arr[~in_ids & quoted]
                longer = memo[lk] = arr.tolist()
            if fresh_slash:
                keep = v.slash_id_bits
            mode = self._free_after(a) if len(longer) > 4 and rc is None else 0
            if mode:
                # ``a`` leads into a free field: xgrammar's row already holds the
                # lexical rules there and the graph constrains only braces and line
                # ends (and, for a strict target, closing quotes), so tokens without
                # either pass wholesale
                strict = mode == 2
                special = '{\n"' if strict else "{\n"
                fk = ("into_free", a, strict)
                split = memo.get(fk)
                if split is None:
                    plain = [t for t in longer if not any(c in texts[t] for c in special)]
                    rest = [t for t in longer if any(c in texts[t] for c in special)]
                    split = memo[fk] = (pack_ids(plain, v.words), [t for t in rest if "\n" not in texts[t]],
                                        [t for t in rest if "\n" in texts[t]])
                keep = split[0] if keep is None else keep | split[0]
                # Tokens with a brace but no newline: their verdict depends on the
                # template variables only (the field's fixed part is written), so
                # it is kept on the entry; tokens that finish the line are decided
                # like the newline candidates of a free position. Tokens that go on
                # into a string the runtime could misread are decided in groups.
                lead = a + '"'
                s = open_string(gp, self._g, self._line + lead) if strict else None
                # the string's group verdicts, shared with the positions inside it
                shared = shared_verdicts(self._g, self._line + lead, s) if s is not None else None
                bk = ("into_free_braces", a, (names := self._vars_after(a)), strict)
                braces = memo.get(bk)
                if braces is None:
                    no = set(quote_rejects(memo, fk, texts, split[1], s, self._ok, lead=lead,
                                           braces=v.brace_ok_bits(names), shared=shared))
                    passing = [t for t in split[1] if t not in no]
                    # also packed: a hundred ids or more, OR-ed in as one row
                    braces = memo[bk] = (passing, len(split[1]), pack_ids(passing, v.words))
                ends = split[2]
                bad = set(quote_rejects(memo, fk + ("ends",), texts, ends, s, self._ok, lead=lead, shared=shared)
                          if strict else self._free_rejects(ends, False, False))
                keep = keep | braces[2]
                allowed += [t for t in ends if t not in bad]
                longer = []
                narrowed = narrowed or bool(bad) or len(braces[0]) < braces[1]
            for tid in longer:
                tok = texts[tid]
                if rc is not None and '"' in tok:
                    continue
                if a == sl.fresh_entry and fresh_tail(tok[len(a):]) or self._ok(tid):
                    allowed.append(tid)
        if sl.fresh >= 0:
            room = MAX_ID - sl.fresh
            runs = v.idrun_letter_le if sl.fresh == 0 else v.idrun_le
            if room >= 1:
                keep = runs[room - 1] if keep is None else keep | runs[room - 1]
                ek = ("edge", sl.fresh == 0, room)
                edge = memo.get(ek)
                if edge is None:
                    # the runs of exactly ``room`` characters, looked up in the row
                    # (equal to ``ids_in(xrow & runs[room] & ~runs[room - 1])``, without
                    # three passes over the whole row)
                    eq = v.idrun_letter_eq if sl.fresh == 0 else v.idrun_eq
                    edge = memo[ek] = v.ids_set(eq[room], xrow).tolist()
                if rc is not None:
                    # the token stays inside the element: the line check is the
                    # element's prefix check on the list parsed so far
                    allowed += [tid for tid in edge if rc[0].element_prefix_ok(rc[1] + texts[tid])]
                else:
                    allowed += [tid for tid in edge if self._ok(tid)]
        bulk: np.ndarray | None = None
        if rc is not None or sl.fresh >= 0:
            closers, bulk = self._closers(memo, xrow, rc)
            allowed += closers
        if self._tool_line():
            # did xgrammar allow a token here that the graph's tool / key set drops?
            if keep is None:
                pop = memo.get("pop")
                if pop is None:
                    pop = memo["pop"] = int(np.unpackbits(xrow.view(np.uint8)).sum())
                narrowed = pop > len(set(allowed))
            if narrowed:
                self.masked_tool_attempts += 1
        if keep is None:
            row.fill(0)
        else:
            np.bitwise_and(xrow, keep, out=row)
        if bulk is not None:
            np.bitwise_or(row, bulk, out=row)
        if allowed:
            _or_ids(row, allowed)

    def _closers(self, memo: dict[Any, Any], xrow: np.ndarray,
                 ctx: tuple[Any, str] | None) -> tuple[list[int], np.ndarray | None]:
        """Tokens that finish the current reference element and close it (``x"y``).

        Such a token is allowed when ``e + x`` (``e``: the element so far) is an
        allowed element and ``y`` an allowed continuation after it; whether ``y`` is
        allowed does not depend on which element was closed, only on whether it was
        a known one or a fresh id, so it is checked once per distinct ``y`` and kind.
        The candidates ``x`` are found through an index of the row's quote tokens
        (``_CloserIndex``): known elements by lookup, fresh ids by array filters.
        """
        ix: _CloserIndex | None = memo.get("closers")
        if ix is None:
            ix = memo["closers"] = _CloserIndex.build(self._vocab, xrow)
        if ctx is None:
            return [int(tid) for tid in ix.tids if self._ok(int(tid))], None
        refs, e = ctx
        banned = refs.banned_ids()
        fresh_ok = refs.fresh_allowed()
        t = self._gp.target + "/"
        f = e[len(t):] if e.startswith(t) else None
        # y's verdict differs only by whether the element was fresh (a fresh id takes
        # a place of the node budget), so it is shared by every position inside this
        # element (memo on the line state, keyed by the text before the element)
        before = self._line[: len(self._line) - len(e)]
        g_memo = self._g.memo
        verdicts: dict[tuple[int, Any], bool] = {}
        # a known element that no reference named yet (a branch of a required join
        # when fresh ids are not allowed) makes a node pending: its own verdict kind
        c = self._gp.content
        fresh_known = ({k for k in refs.finite() if refs.makes_pending(k)}
                       if c is not None and c.join else set())

        def verdict(gi: int, known: Any, tid: int) -> bool:
            ok = verdicts.get((gi, known))
            if ok is None:
                y = ix.ys[gi]
                shareable = 'id: "' not in y  # past a new line's id, the id itself matters
                mk = ("close", before, y, known)
                ok = g_memo.get(mk) if shareable else None
                if ok is None:
                    ok = self._close_ok(refs, e, tid)
                    if shareable:
                        g_memo[mk] = ok
                verdicts[(gi, known)] = ok
            return ok

        out: list[int] = []
        bulk: np.ndarray | None = None  # a packed row: the fresh-id closers
        known_tids: set[int] = set()
        for k in refs.finite():
            if k.startswith(e):
                kind = "new" if k in fresh_known else True
                for tid, gi in ix.by_x.get(k[len(e):], ()):
                    known_tids.add(tid)
                    if verdict(gi, kind, tid):
                        out.append(tid)
        if f is not None and fresh_ok:
            room = MAX_ID - len(f)
            drop = set(known_tids)
            for b in banned:
                if b.startswith(f):
                    drop.update(tid for tid, _gi in ix.by_x.get(b[len(f):], ()))
            # one verdict per group, on a member that is not dropped; the row of the
            # groups that pass is kept on the index, less the dropped tokens
            ok_groups = []
            for gi, gtids in ix.fresh_groups(room, not f):
                rep = next((tid for tid in gtids if tid not in drop), None)
                if rep is not None and verdict(gi, False, rep):
                    ok_groups.append(gi)
            if ok_groups:
                bulk = ix.fresh_row(room, not f, tuple(ok_groups), len(xrow))
                bm = bulk.data
                hit = [tid for tid in drop if (bm[tid >> 5] >> (tid & 31)) & 1]
                if hit:
                    bulk = bulk.copy()
                    _clear_ids(bulk, hit)
        elif f is None and fresh_ok and t.startswith(e):
            # e is still inside the target path: a token may finish it and a fresh id
            rest_of_t = t[len(e):]
            for x, tid, gi in ix.with_x_prefix(rest_of_t):
                fid = x[len(rest_of_t):]
                if tid not in known_tids and fresh_id(fid) and fid not in banned and verdict(gi, False, tid):
                    out.append(tid)
        return out, bulk

    def _close_ok(self, refs: Any, e: str, tid: int) -> bool:
        """``_ok`` of a token ``x"y`` that closes the reference element ``e`` of a list
        (``refs``: the list parsed before the element). For the tails the list's own
        parse decides (``_parse_refs``: ``""``, a separator, the closing bracket) the
        verdict is read from the list state with ``e + x`` added, without parsing
        the line again; other tails (a newline, text after the separator) and single
        references take the line check."""
        tok = self._vocab.texts[tid]
        x, y = tok.split('"', 1)
        if y not in ("", ",", ", ", "]") or "[" not in self._line:
            return self._ok(tid)
        el = e + x
        if not refs.element_ok(el):
            return False
        if not y:
            return True
        after = refs.copy()
        after.add(el)
        return bool(after.may_close() if y == "]" else after.any_more())

    def _check_against_reference(self, row: np.ndarray) -> None:
        import xgrammar as xgr

        if self._vbuf is None:
            self._vbuf = xgr.allocate_token_bitmask(1, self._vocab.info.vocab_size)
        attempts = self.masked_tool_attempts
        self.fill_reference(self._vbuf, 0)
        self.masked_tool_attempts = attempts
        ref = self._vbuf[0].numpy().view(np.uint32)
        if not np.array_equal(row, ref):
            extra = VocabIndex.ids_in(row & ~ref)[:8].tolist()
            missing = VocabIndex.ids_in(ref & ~row)[:8].tolist()
            raise RuntimeError(f"mask differs from the reference after {self._line!r}: "
                               f"extra {extra}, missing {missing}")



class _CloserIndex:
    """The quote tokens ``x"y`` of one xgrammar row, indexed for ``_closers``:
    grouped by ``y``, looked up by ``x``, and as arrays for the fresh-id filters."""

    __slots__ = ("ys", "tids", "by_x", "id_tids", "id_len", "id_lead", "id_gi",
                 "_sorted", "_fresh", "_rows")

    def __init__(self) -> None:
        self.ys: list[str] = []
        self.tids = np.zeros(0, dtype=np.int64)
        self.by_x: dict[str, list[tuple[int, int]]] = {}
        self.id_tids = np.zeros(0, dtype=np.int64)
        self.id_len = np.zeros(0, dtype=np.int64)
        self.id_lead = np.zeros(0, dtype=bool)
        self.id_gi = np.zeros(0, dtype=np.int64)
        self._sorted: tuple[list[str], list[tuple[str, int, int]]] | None = None
        self._fresh: dict[tuple[int, bool], list[tuple[int, list[int]]]] = {}
        self._rows: dict[tuple[int, bool, tuple[int, ...]], np.ndarray] = {}

    def fresh_groups(self, room: int, lead_only: bool) -> list[tuple[int, list[int]]]:
        """``(group, token ids)`` of the tokens whose ``x`` can extend a fresh id with
        ``room`` characters left (and start one, with ``lead_only``), by group."""
        key = (room, lead_only)
        hit = self._fresh.get(key)
        if hit is None:
            sel = self.id_len <= room
            if lead_only:
                sel &= self.id_lead
            groups: dict[int, list[int]] = {}
            for tid, gi in zip(self.id_tids[sel].tolist(), self.id_gi[sel].tolist(), strict=True):
                groups.setdefault(gi, []).append(tid)
            hit = self._fresh[key] = list(groups.items())
        return hit

    def fresh_row(self, room: int, lead_only: bool, groups: tuple[int, ...], words: int) -> np.ndarray:
        """Packed row of ``fresh_groups(room, lead_only)`` members in ``groups``
        (kept; the caller must not change it)."""
        key = (room, lead_only, groups)
        row = self._rows.get(key)
        if row is None:
            if len(self._rows) >= 64:
                self._rows.clear()
            want = set(groups)
            row = np.zeros(words, dtype=np.uint32)
            ids = [tid for gi, tids in self.fresh_groups(room, lead_only) if gi in want for tid in tids]
            if ids:
                _or_ids(row, ids)
            self._rows[key] = row
        return row

    @classmethod
    def build(cls, vocab: VocabIndex, xrow: np.ndarray) -> _CloserIndex:
        ix = cls()
        ix.tids = vocab.ids_in(xrow & vocab.quote_bits)
        group: dict[str, int] = {}
        id_rows: list[tuple[int, int, bool, int]] = []
        for tid in ix.tids.tolist():
            x, y = vocab.texts[tid].split('"', 1)
            gi = group.get(y)
            if gi is None:
                gi = group[y] = len(ix.ys)
                ix.ys.append(y)
            ix.by_x.setdefault(x, []).append((tid, gi))
            # x can extend a fresh id (id characters only, possibly none: the quote
            # right after the id); it may start one when it begins with a letter
            if set(x) <= _ID_CHARS:
                id_rows.append((tid, len(x), x[:1] in _LETTERS, gi))
        if id_rows:
            cols = list(zip(*id_rows, strict=True))
            ix.id_tids = np.asarray(cols[0], dtype=np.int64)
            ix.id_len = np.asarray(cols[1], dtype=np.int64)
            ix.id_lead = np.asarray(cols[2], dtype=bool)
            ix.id_gi = np.asarray(cols[3], dtype=np.int64)
        return ix

    def with_x_prefix(self, prefix: str) -> list[tuple[str, int, int]]:
        """``(x, token id, group)`` of the tokens whose ``x`` starts with ``prefix``."""
        if self._sorted is None:
            rows = sorted((x, tid, gi) for x, items in self.by_x.items() for tid, gi in items)
            self._sorted = ([r[0] for r in rows], rows)
        keys, rows = self._sorted
        lo = bisect.bisect_left(keys, prefix)
        hi = bisect.bisect_left(keys, prefix + "\U0010ffff")
        return rows[lo:hi]
