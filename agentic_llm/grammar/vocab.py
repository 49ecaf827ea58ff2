"""A vocabulary index for the graph layer: sorted token texts and token-class bitmasks.

Token texts are the token bytes decoded as latin-1 (one character per byte), so
partial UTF-8 sequences are ordinary strings and every structural character the
graph layer looks at (ASCII) compares exactly.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from agentic_llm.grammar.memo import CLOSURE_MEMO_ENTRIES, TEXT_MEMO_ENTRIES, BoundedMemo
from agentic_llm.grammar.tokenizer import TokenizerInfo

__all__ = ["VocabIndex", "brace_shape", "pack_ids"]

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
MAX_ID = 32


def pack_ids(ids: list[int], words: int) -> np.ndarray:
    """A packed row of ``words`` uint32 words with the bits of ``ids`` set."""
    out = np.zeros(words, dtype=np.uint32)
    if ids:
        a = np.asarray(ids, dtype=np.int64)
        np.bitwise_or.at(out, a >> 5, (np.uint32(1) << (a & 31).astype(np.uint32)))
    return out


def brace_shape(text: str) -> tuple[tuple[str, ...], str | None] | None:
    """What ``graph.vars_ok(variables, text, False)`` asks of ``variables``: the names of
    the complete ``{{ name }}`` templates in ``text`` and the unfinished template at its
    end (``None``: none), each of which must be a variable or a variable's template
    prefix; ``None`` when no variable set passes ``text`` (a ``{`` that does not start
    ``{{ ``, nor a prefix of it at the end)."""
    names: list[str] = []
    i = text.find("{")
    while i >= 0:
        rest = text[i:]
        j = rest.find(" }}")
        if j < 0:
            return (tuple(names), rest) if rest in ("{", "{{") or rest.startswith("{{ ") else None
        if not rest.startswith("{{ "):
            return None
        names.append(rest[3:j])
        i = text.find("{", i + j + 3)
    return tuple(names), None


@dataclass(eq=False)
class VocabIndex:
    """Lookups over one vocabulary, shared read-only by every matcher."""

    info: TokenizerInfo
    texts: list[str] = field(init=False)
    words: int = field(init=False)

    def __post_init__(self) -> None:
        self.texts = [b.decode("latin-1") for b in self.info.token_bytes]
        self.words = (self.info.vocab_size + 31) // 32
        pairs = sorted((t, i) for i, t in enumerate(self.texts) if t)
        self._keys = [t for t, _ in pairs]
        self._ids = np.asarray([i for _, i in pairs], dtype=np.int64)
        self.lengths = np.asarray([len(t) for t in self.texts], dtype=np.int64)
        self.by_text: dict[str, int] = {}
        # the longest token starting with each 2- and 4-character prefix: bounds
        # the walk of ``_prefixes_of``
        self._maxlen2: dict[str, int] = {}
        self._maxlen4: dict[str, int] = {}
        for t, i in pairs:
            self.by_text.setdefault(t, i)
            if len(t) > 1 and self._maxlen2.get(t[:2], 0) < len(t):
                self._maxlen2[t[:2]] = len(t)
            if len(t) > 3 and self._maxlen4.get(t[:4], 0) < len(t):
                self._maxlen4[t[:4]] = len(t)
        quote, brace, newline, slash_id, multi_quote = [], [], [], [], []
        idrun: list[list[int]] = [[] for _ in range(MAX_ID + 1)]
        idrun_letter: list[list[int]] = [[] for _ in range(MAX_ID + 1)]
        for i, t in enumerate(self.texts):
            if not t:
                continue
            if "\n" in t:
                newline.append(i)
            elif "{" in t:
                brace.append(i)
            if '"' in t:
                quote.append(i)
                if t.count('"') > 1:
                    multi_quote.append(i)
            if 1 < len(t) <= MAX_ID and t[0] == "/" and t[1] in _LETTERS and set(t[1:]) <= _ID_CHARS:
                slash_id.append(i)
            if len(t) <= MAX_ID and set(t) <= _ID_CHARS:
                idrun[len(t)].append(i)
                if t[0] in _LETTERS:
                    idrun_letter[len(t)].append(i)
        self.newline_bits = pack_ids(newline, self.words)
        self.brace_ids = brace
        self.brace_bits = pack_ids(brace, self.words)
        self._brace_ok: dict[object, np.ndarray] = {}
        self._brace_shapes: dict[tuple[tuple[str, ...], str | None], list[int]] | None = None
        # memos keyed by slot texts, which often hold a request's own target path:
        # bounded, so unique traffic does not grow them (grammar.memo)
        self._closure: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray] | None] = \
            BoundedMemo(CLOSURE_MEMO_ENTRIES)
        self._longer: dict[str, bool] = BoundedMemo(TEXT_MEMO_ENTRIES)
        self._prefixes: dict[str, list[int]] = BoundedMemo(TEXT_MEMO_ENTRIES)
        self.quote_bits = pack_ids(quote, self.words)
        # tokens with two quotes or more: they may close a string and write another
        # whole one (what a strict target checks even where the open one is safe)
        self.multi_quote_bits = pack_ids(multi_quote, self.words)
        # "/" then the start of a node id: what follows a target path in a reference
        self.slash_id_bits = pack_ids(slash_id, self.words)
        # idrun_le[k]: pure id-character tokens of length <= k (cumulative)
        self.idrun_le = [np.zeros(self.words, dtype=np.uint32)]
        self.idrun_letter_le = [np.zeros(self.words, dtype=np.uint32)]
        # idrun_eq[k]: the same tokens of length exactly k, as sorted id arrays (the
        # difference of two consecutive cumulative rows, a few ids: what a fresh id
        # with k characters of room left may end on)
        self.idrun_eq = [np.asarray(ids, dtype=np.int64) for ids in idrun]
        self.idrun_letter_eq = [np.asarray(ids, dtype=np.int64) for ids in idrun_letter]
        for k in range(1, MAX_ID + 1):
            self.idrun_le.append(self.idrun_le[-1] | pack_ids(idrun[k], self.words))
            self.idrun_letter_le.append(self.idrun_letter_le[-1] | pack_ids(idrun_letter[k], self.words))

    def brace_ok_bits(self, variables: frozenset[str]) -> np.ndarray:
        """Tokens (without a newline) whose every ``{`` starts ``{{ name }}`` for one of
        ``variables``, or a prefix of that at the token's end: the brace tokens a free
        string position allows. Cached per variable set."""
        hit = self._brace_ok.get(variables)
        if hit is not None:
            return hit
        if self._brace_shapes is None:
            shapes: dict[tuple[tuple[str, ...], str | None], list[int]] = {}
            for i in self.brace_ids:
                shape = brace_shape(self.texts[i])
                if shape is not None:
                    shapes.setdefault(shape, []).append(i)
            self._brace_shapes = shapes
        # one verdict per shape (a handful of shapes can pass at all)
        ok = [i for (names, tail), ids in self._brace_shapes.items()
              if all(n in variables for n in names)
              and (tail is None or any(("{{ " + v + " }}").startswith(tail) for v in variables))
              for i in ids]
        bits = pack_ids(ok, self.words)
        if len(self._brace_ok) > 256:
            self._brace_ok.clear()
        self._brace_ok[variables] = bits
        return bits

    def brace_drop_bits(self, variables: frozenset[str]) -> np.ndarray:
        """AND-mask that removes the brace tokens a free string position forbids
        (the complement of brace tokens outside ``brace_ok_bits``)."""
        key = ("drop", variables)
        hit = self._brace_ok.get(key)  # type: ignore[call-overload]
        if hit is None:
            hit = ~(self.brace_bits & ~self.brace_ok_bits(variables))
            self._brace_ok[key] = hit  # type: ignore[index]
        return hit

    def with_prefix(self, prefix: str) -> np.ndarray:
        """Ids of tokens whose text starts with ``prefix`` (``prefix`` itself included)."""
        lo = bisect.bisect_left(self._keys, prefix)
        hi = bisect.bisect_left(self._keys, prefix + "\U0010ffff")
        return self._ids[lo:hi]

    def longer_with_prefix(self, prefix: str, row: np.ndarray) -> np.ndarray:
        """Ids of tokens that start with ``prefix``, are longer than it, and whose bit
        is set in ``row``."""
        ids = self.with_prefix(prefix)
        if ids.size == 0:
            return ids
        ids = ids[self.lengths[ids] > len(prefix)]
        on = (row[ids >> 5] >> (ids & 31).astype(np.uint32)) & 1
        return ids[on.astype(bool)]

    def has_longer(self, text: str) -> bool:
        """True when some token starts with ``text`` and is longer (memoized)."""
        hit = self._longer.get(text)
        if hit is None:
            # tokens starting with ``text`` sort right after it: one bisect, then skip
            # the tokens equal to it
            keys = self._keys
            j = bisect.bisect_left(keys, text)
            while j < len(keys) and keys[j] == text:
                j += 1
            hit = self._longer[text] = j < len(keys) and keys[j].startswith(text)
        return hit

    def prefix_closure(self, texts: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        """Tokens that are a non-empty prefix of one of ``texts`` (``""`` standing
        for a newline) as merged ``(word indices, bits)`` of a packed row, or
        ``None`` when some token runs past one of them (then the exact set needs the
        grammar). Memoized per ``texts``."""
        hit = self._closure.get(texts, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        ids: list[int] = []
        out: tuple[np.ndarray, np.ndarray] | None = None
        for t in texts:
            a = t or "\n"
            if self.has_longer(a):
                break
            ids += self.prefixes_of(a)
        else:
            words: dict[int, int] = {}
            for tid in ids:
                words[tid >> 5] = words.get(tid >> 5, 0) | (1 << (tid & 31))
            out = (np.fromiter(words.keys(), dtype=np.int64, count=len(words)),
                   np.fromiter(words.values(), dtype=np.uint32, count=len(words)))
        self._closure[texts] = out
        return out

    def prefixes_of(self, text: str) -> list[int]:
        """Ids of tokens that are a non-empty prefix of ``text`` (memoized: the texts
        of a slot recur at every position of their kind). One lookup per character,
        up to the longest token that starts like the text (by its first two and four
        characters: a heading line such as ``### AgenticDSL ...`` stops after a few).
        The list must not be changed."""
        hit = self._prefixes.get(text)
        if hit is None:
            hit = self._prefixes[text] = self._prefixes_of(text)
        return hit

    def _prefixes_of(self, text: str) -> list[int]:
        get = self.by_text.get
        out = []
        i = get(text[:1])
        if i is not None:
            out.append(i)
        # no token starting with these two (four) characters is longer than this
        n = min(len(text), self._maxlen2.get(text[:2], 0))
        if n > 4:
            n = max(3, min(n, self._maxlen4.get(text[:4], 0)))
        for k in range(2, n + 1):
            i = get(text[:k])
            if i is not None:
                out.append(i)
        return out

    @staticmethod
    def ids_set(ids: np.ndarray, row: np.ndarray) -> np.ndarray:
        """The ids of ``ids`` whose bit is set in the packed ``row`` (order kept)."""
        if ids.size == 0:
            return ids
        return ids[((row[ids >> 5] >> (ids & 31).astype(np.uint32)) & 1).astype(bool)]

    @staticmethod
    def ids_in(bits: np.ndarray) -> np.ndarray:
        """Token ids whose bit is set in ``bits``."""
        nz = np.flatnonzero(bits)
        if nz.size == 0:
            return nz
        sub = bits[nz]
        shifts = np.arange(32, dtype=np.uint32)
        hit = (sub[:, None] >> shifts[None, :]) & 1
        w, b = np.nonzero(hit)
        return nz[w] * 32 + b
