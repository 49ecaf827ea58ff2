"""The shortest way to finish a document from any position: what the budget reserves.

``closing_text(gp, g, line)`` is a text the grammar and the graph layer accept from
the position (``g`` at a line start, ``line`` written since) that ends the document:
it finishes the open line (an open string, template, escape, reference or key), the
current node's required fields, one ``end`` node per pending id, the END marker and
the closing fence. It writes no optional field and picks the cheapest choice at each
slot (a pending id or an existing target before a new node, ``end`` before other
types, the tool with the fewest required arguments). ``DSLMatcher`` reserves its
token count and, once the reserve is reached, lets only its tokens through.

All texts are the latin-1 view of UTF-8 bytes, like the matcher's lines.
"""

from __future__ import annotations

from agentic_llm.grammar.graph import (
    COND_PREFIX,
    END_LINE,
    GraphPlan,
    GraphState,
    _next_arg_keys,
    _options,
    _parsed,
    _tool_keys,
    _types,
    apply_line,
    arg_vars,
    declarable,
    untaken,
    used_keys,
)
from agentic_llm.grammar.runtime import closes_as_string, string_spans

__all__ = ["closing_text", "close_line", "FENCE", "TYPE_ORDER"]

FENCE = "```\n"
# node types by the length of their smallest body
TYPE_ORDER = ("end", "assign", "llm_call", "generate_subgraph", "join", "tool_call", "assert",
              "fork", "dsl_call", "codelet_call")


def _empty_string(gp: GraphPlan) -> str:
    """The shortest string value the target reads as a string."""
    return '"x"' if gp.strict_strings else '""'


# the escapes the canonical form writes as \uXXXX (docs/canonical-form.md)
_U_ESCAPES = tuple(f"\\u00{a}{b}" for a in "0189" for b in "0123456789abcdef") + (
    "\\u007f", "\\u2028", "\\u2029", "\\ufeff", "\\ufffe", "\\uffff")
_CONT = ("\xbf", "\x9f", "\x90", "\xbd", "\x80")
_RAW_EXCLUDED = frozenset(range(0x80, 0xA0)) | {0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF}


def _finish_char(b: bytes) -> str:
    """Continuation bytes that finish the UTF-8 character ``b`` starts (``b``: its
    lead byte and the continuation bytes so far) as an unescaped string character."""
    need = 2 if b[0] < 0xE0 else 3 if b[0] < 0xF0 else 4
    left = need - len(b)
    if left <= 0:
        return ""
    todo: list[str] = [""]
    for _ in range(left):
        todo = [t + c for t in todo for c in _CONT]
    for t in todo:
        try:
            ch = (b + t.encode("latin-1")).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if ord(ch) not in _RAW_EXCLUDED:
            return t
    raise ValueError("no character completes the open UTF-8 sequence")


def _close_open_string(gp: GraphPlan, raw: str, key: bool = False,
                       names: frozenset[str] | None = None) -> str:
    """Text that closes the open string whose raw content is ``raw`` (finishing an
    escape, a multi-byte character or a template first; ``names``: what a template
    there may read, the plan's variables unless given)."""
    out = ""
    bs = len(raw) - len(raw.rstrip("\\"))
    k = raw.rfind("\\u")
    if bs % 2 == 1:
        out = "n"  # a lone backslash: \n
    elif k >= 0 and len(raw) - k < 6 and (k - len(raw[:k].rstrip("\\"))) % 2 == 0:
        part = raw[k:]
        out = next(e for e in _U_ESCAPES if e.startswith(part))[len(part):]
    else:
        b = raw.encode("latin-1", "replace")
        j = len(b) - 1
        while j >= 0 and b[j] & 0xC0 == 0x80:
            j -= 1
        if j >= 0 and b[j] >= 0xC0:
            out = _finish_char(b[j:])
        t = ""
        k2 = raw.rfind("{{")
        if k2 >= 0 and "}}" not in raw[k2 + 2:]:
            t = raw[k2:]
        elif raw.endswith("{"):
            t = "{"
        if t:
            out += next(f for f in ("{{ " + v + " }}" for v in sorted(names or gp.variables))
                        if f.startswith(t))[len(t):]
    content = raw + out
    if key and not content or gp.strict_strings and not closes_as_string(content):
        out += "x"
    return out + '"'


def _close_string_field(gp: GraphPlan, rest: str, cond: bool,
                        names: frozenset[str] | None = None) -> str:
    if not rest:
        if cond:
            return ('"{{ ' + sorted(gp.variables)[0] + ' }}"') if gp.strict_strings else '"true"'
        return _empty_string(gp)
    _closed, open_raw = string_spans(rest)
    if open_raw is None:
        return ""
    if cond and not gp.strict_strings:
        for w in ("true", "false"):
            if w.startswith(open_raw):
                return w[len(open_raw):] + '"'
    if cond and open_raw == "":
        return "{{ " + sorted(gp.variables)[0] + ' }}"'
    if cond and open_raw in ("{", "{{"):
        return ("{{ " + sorted(gp.variables)[0] + ' }}"')[len(open_raw):]
    return _close_open_string(gp, open_raw, names=names)


def _close_keys(gp: GraphPlan, rest: str, taken: frozenset[str] = frozenset()) -> str:
    """Finish an ``output_keys`` flow list (``["k", ...]``) with keys not in ``taken``."""
    k = '"' + _fresh_key(tuple(taken), gp) + '"'
    if not rest:
        return "[" + k + "]"
    closed, open_raw = string_spans(rest)
    if open_raw is not None:
        out = _close_open_string(gp, open_raw, key=True)[:-1]
        return out + untaken(gp, open_raw + out, taken) + '"]'
    if rest.endswith("]"):
        return ""
    if rest.endswith("["):
        return k + "]"
    if rest.endswith(","):
        return " " + k + "]"
    if rest.endswith(", "):
        return k + "]"
    return "]"


def _fresh_key(taken: tuple[str, ...], gp: GraphPlan) -> str:
    n = 0
    while True:
        k = "x" if n == 0 else f"x{n}"
        if k not in taken:
            return k
        n += 1


def _close_entry(gp: GraphPlan, g: GraphState, rest: str) -> str:
    """Finish an assign entry ``"key": "value"``."""
    if not rest:
        return '"' + _fresh_key(tuple(used_keys(gp, g)), gp) + '": ' + _empty_string(gp)
    j = rest.find('"', 1)
    if j < 0:
        key = rest[1:]
        out = "" if key else _fresh_key(tuple(used_keys(gp, g)), gp)
        return out + untaken(gp, key + out, used_keys(gp, g)) + '": ' + _empty_string(gp)
    tail = rest[j + 1:]
    if len(tail) < 2:
        return ": "[len(tail):] + _empty_string(gp)
    return _close_string_field(gp, tail[2:], False)


def _close_refs(gp: GraphPlan, g: GraphState, kind: str, rest: str) -> str:
    """Finish a reference list (``["/p", ...]``) or a single reference."""
    ctx, ok, state, closed = _parsed(gp, g, kind, rest)
    if closed or not ok:
        return ""
    end = '"' if kind == "onfail" else '"]'
    # content rules: a list written while the document owes nodes must name a fresh one
    grow = kind == "refs" and gp.content is not None and gp.content.must_grow(g)
    if state == "sep" and not rest.endswith(",") and ctx.may_close():
        return "]"
    c = gp.content
    if kind == "waits" and state == "start" and c is not None and c.join and not g.joined \
            and c.branches_done(g) and g.cur not in c.join:
        # a join while the required one is owed: it becomes the required one
        return "[" + ", ".join(f'"{gp.target}/{b}"' for b in sorted(c.join)) + "]"
    e = state[5:] if state.startswith("elem:") else ""
    try:
        first = _best_element(gp, ctx, e, grow)
    except ValueError:
        if not (grow and e):
            raise
        # the element begun names no new node: finish it, then name a new one
        done = ctx.copy()
        done.add(e + _best_element(gp, ctx, e))
        first = _best_element(gp, ctx, e) + '", "' + _best_element(gp, done, "", True)
    if kind == "waits" and g.jc and g.cur == g.jc and gp.content is not None:
        # the required join names every branch before it closes
        t = gp.target + "/"
        named = set(ctx.used) | {e + first}
        end = '"' + "".join(f', "{t}{b}"' for b in sorted(gp.content.join) if t + b not in named) + "]"
    lead = {"start": '["', "open": '"', "sep": ' "' if rest.endswith(",") else ', "'}.get(state, "")
    return lead + first + end


def _best_element(gp: GraphPlan, ctx, e: str, fresh: bool = False) -> str:  # type: ignore[no-untyped-def]
    """The cheapest completion of the reference element ``e`` (its remainder): a
    name the list may use (a pending id, a declared node, an external path), else a
    fresh id (which costs a node); only a fresh id when ``fresh``."""
    t = gp.target + "/"
    best: tuple[int, str] | None = None
    # a list that must name a new node: a fresh id, or a branch of the required join
    # no list named yet (``finite`` offers those when fresh ids are not allowed)
    new = set(ctx.gp.content.unreferenced(ctx.g, tuple(ctx.new_pending))) if ctx.gp.content else set()
    for x in ctx.finite() if not fresh else [t + b for b in sorted(new)]:
        if x.startswith(e) and (best is None or len(x) - len(e) < best[0]):
            best = (len(x) - len(e), x[len(e):])
    if ctx.fresh_allowed() and (t.startswith(e) or e.startswith(t)):
        banned = ctx.banned_ids()
        cand: str | None = None
        if e.startswith(t) and e != t:
            f, add = e[len(t):], ""
            while f + add in banned and len(f + add) < 32:
                add += "x"
            cand = add if f + add not in banned else None
        else:
            n = 0
            while ("n" if n == 0 else f"n{n}") in banned:
                n += 1
            cand = t[len(e):] + ("n" if n == 0 else f"n{n}")
        if cand is not None and (best is None or len(cand) + 30 < best[0]):
            best = (len(cand) + 30, cand)
    if best is None:
        raise ValueError(f"no completion for reference {e!r}")
    return best[1]


def _line_completion(gp: GraphPlan, g: GraphState, st, rest: str) -> str:  # type: ignore[no-untyped-def]
    kind = st.kind
    if kind in ("fixed", "end"):
        return ""
    if kind == "id":
        for p in declarable(gp, g):
            if (p + '"').startswith(rest):
                return (p + '"')[len(rest):]
        raise ValueError("no pending id fits")
    if kind == "type":
        types = [x for x in _types(gp, g) if x.startswith(rest)]
        if gp.content is not None and gp.content.missing(g) and "tool_call" in types:
            return "tool_call"[len(rest):]  # the document owes a required tool call
        c = gp.content
        if c is not None and c.join and not g.joined and c.branches_done(g) and g.cur not in c.join and "join" in types:
            return "join"[len(rest):]  # the document owes the required join
        for x in TYPE_ORDER:
            if x in types:
                if x == "tool_call":
                    continue
                return x[len(rest):]
        if "tool_call" in types:
            return "tool_call"[len(rest):]
        raise ValueError("no node type fits")
    if kind == "tool":
        owed = gp.content.missing(g) if gp.content is not None else frozenset()
        names = sorted((n for n in gp.tools if f'"{n}"'.startswith(rest)),
                       key=lambda n: (n not in owed, sum(1 for _k, r in gp.tools[n] if r), len(n)))
        if not names:
            raise ValueError("no tool fits")
        return f'"{names[0]}"'[len(rest):]
    if kind == "args":
        keys = _tool_keys(gp, g)
        return " {}"[len(rest):] if not any(r for _k, r in keys) and " {}".startswith(rest) else ""
    if kind == "argentry":
        if '": ' in rest:
            k = rest.index('": ')
            return _close_string_field(gp, rest[k + 3:], False, arg_vars(gp, g))
        for key in reversed(_next_arg_keys(gp, g)):  # the required one comes last
            full = key + '": '
            if full.startswith(rest):
                return full[len(rest):] + _empty_string(gp)
        raise ValueError("no argument key fits")
    if kind == "entry":
        return _close_entry(gp, g, rest)
    if kind in ("refs", "waits", "onfail"):
        return _close_refs(gp, g, kind, rest)
    if kind == "outkeys" or st.prefix == "    output_keys: ":
        return _close_keys(gp, rest, used_keys(gp, g))
    if st.prefix == "    termination_mode: ":
        for w in ("hard", "soft"):
            if w.startswith(rest):
                return w[len(rest):]
        return ""
    if kind == "free":
        return _close_string_field(gp, rest, st.prefix == COND_PREFIX)
    raise ValueError(f"no completion for a {kind} line")


def close_line(gp: GraphPlan, g: GraphState, line: str) -> str:
    """Text that finishes ``line`` (newline included) as cheaply as possible."""
    opts = _options(gp, g)
    best: str | None = None
    for st in reversed(opts):  # the last option is the required one (or the next node)
        if st.kind == "any":
            continue
        if line.startswith(st.prefix):
            try:
                text = _line_completion(gp, g, st, line[len(st.prefix):])
            except ValueError:
                continue
        elif st.prefix.startswith(line):
            try:
                text = st.prefix[len(line):] + _line_completion(gp, g, st, "")
            except ValueError:
                continue
        else:
            continue
        if best is None or len(text) < len(best):
            best = text
        if not line:
            break  # at a line start: the required option, no optional field
    if best is None:
        raise ValueError(f"no completion for line {line!r}")
    return best + "\n"


def closing_text(gp: GraphPlan, g: GraphState, line: str, after_end: str = "") -> str:
    """Text that ends the document from the position (``after_end``: what was written
    after the END marker line, when ``g`` is done)."""
    if g.done:
        return FENCE[len(after_end):] if FENCE.startswith(after_end) else ""
    text = close_line(gp, g, line)
    if line + text[:-1] == END_LINE:
        return text + FENCE
    return text + close_rest(gp, apply_line(gp, g, line + text[:-1]))


def close_rest(gp: GraphPlan, g: GraphState) -> str:
    """From a line start: the lines that end the document (memoized on the state)."""
    hit = g.memo.get("close_rest")
    if hit is not None and hit[0] is gp:
        return hit[1]  # type: ignore[no-any-return]
    out = []
    h = g
    for _ in range(10_000):
        if h.done:
            break
        text = close_line(gp, h, "")
        out.append(text)
        if text[:-1] == END_LINE:
            break
        h = apply_line(gp, h, text[:-1])
    res = "".join(out) + FENCE
    g.memo["close_rest"] = (gp, res)
    return res

