"""The graph layer: what the context-free grammar cannot say, checked line by line.

The generation profile is line-oriented: every line starts with a fixed prefix that
says what it is (``  - id: "``, ``    type: ``, ``    next: ``, ...). ``GraphState``
is the state at a line start (declared and pending ids, edges, the node being
written and how far through its fields it is). For a line being written,
``line_ok`` says whether the text so far can still become an allowed line, and
``slot`` describes what may come next as a finite set of texts (plus, in a
reference, the open set of fresh node ids), which the matcher turns into a token
mask with a sorted vocabulary.

Rules enforced (with the grammar, every finished document validates):
- the heading, signature and header lines are exactly the plan's;
- a node id is one still pending (referenced earlier and not yet declared), so ids
  are unique and every node is reachable from ``start``;
- a reference names an allowed external path, a declared node that does not reach
  the current node (no cycle), a pending id, or a fresh id while the budget still has
  room for it; ``wait_for`` names declared nodes, no two of which write the same
  context key (a join merges with ``error_on_conflict``);
- the document closes exactly when nothing is pending; at most ``max_nodes`` nodes;
- node types come from the whitelist (``fork`` only when a branch target exists);
- ``tool_call`` names a granted tool, writes its argument keys in schema order with
  every required key; ``{{ name }}`` reads only the plan's context variables, and in a
  tool argument also a key an earlier node surely wrote (``dataflow.py``).

Size: one module, past the 500-line guideline, because its parts share one private
vocabulary that the mask path calls millions of times: the line state, the
reference-list parser (``_RefCtx`` and its per-line memos) and the line checks
(``line_ok``, ``apply_line``, ``slot``) all key their memos on the same
``GraphState`` and step table. A split along those parts would make each call an
import across modules of private helpers without giving any part a use on its own;
what stands apart (content rules, data dependencies, the runtime's string rules,
the closing texts) already lives in ``content.py``, ``dataflow.py``, ``runtime.py``
and ``closing.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from agentic_llm.grammar.content import ContentRules
from agentic_llm.grammar.dataflow import readable_key, template_names, upstream, upstream_keys
from agentic_llm.grammar.ebnf import NODE_FIELDS
from agentic_llm.grammar.memo import CLOSURE_MEMO_ENTRIES, BoundedMemo
from agentic_llm.grammar.runtime import closes_as_string, could_misread, string_spans

__all__ = ["GraphPlan", "GraphState", "Slot", "line_ok", "apply_line", "slot", "initial_state",
           "options", "ref_context", "ends_line", "arg_vars", "template_vars", "declarable",
           "used_keys", "untaken"]

_ID = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_KEY_IN_LIST = re.compile(r'"([^"]*)"')  # the keys of an ``output_keys`` list (no escapes)
MAX_ID = 32
END_LINE = "# --- END AgenticDSL ---"
NODE_PREFIX = '  - id: "'
TYPE_PREFIX = "    type: "
NEXT_PREFIX = "    next: "
ARG_PREFIX = '      "'
COND_PREFIX = "    condition: "
# node ids the reference runtime reads as booleans (``id: "true"``): never fresh ids
_MISREAD_IDS = frozenset({"true", "false"})


@dataclass(frozen=True)
class GraphPlan:
    """The parts of an ``ExecutionPlan`` the graph layer reads."""

    target: str
    signature_line: str | None
    node_types: tuple[str, ...]
    tools: dict[str, tuple[tuple[str, bool], ...]]  # name -> ((key, required), ...) in order
    externals: tuple[str, ...]
    variables: frozenset[str]
    max_nodes: int
    max_string: int | None = None
    runtime: str = "spec"

    @property
    def strict_strings(self) -> bool:
        """Strings must reach the runtime as strings (the ``agenticrt`` target)."""
        return self.runtime == "agenticrt"
    content: ContentRules | None = None  # required tools / minimum node count

    @classmethod
    def from_plan(cls, plan, *, max_string: int | None = None) -> GraphPlan:  # type: ignore[no-untyped-def]
        """The graph plan of ``plan``; ``max_string`` caps string contents (characters,
        softly: a string at the cap must close), which keeps random walks finite."""
        import json

        sig = None
        if plan.signature:
            sig = "signature: " + json.dumps(plan.signature, ensure_ascii=False)
            sig = sig.encode().decode("latin-1")
        return cls(max_string=max_string,
            target=plan.target_path, signature_line=sig, node_types=tuple(plan.node_types),
            tools={t.name: tuple((a.name, a.required) for a in t.arguments) for t in plan.tools},
            externals=tuple(plan.external_targets), variables=frozenset(plan.template_vars),
            max_nodes=plan.max_nodes, runtime=getattr(plan, "target_runtime", "agenticrt"),
            content=ContentRules.from_plan(plan))

    def header_lines(self) -> list[str]:
        lines = [f"### AgenticDSL `{self.target}`", "```yaml", "# --- BEGIN AgenticDSL ---",
                 "graph_type: subgraph"]
        if self.signature_line:
            lines.append(self.signature_line)
        return lines + ['entry: "start"', "nodes:", '  - id: "start"', "    type: start"]


@dataclass(frozen=True)
class GraphState:
    """State at the start of a line."""

    header: int = 0                      # header lines written so far
    done: bool = False                   # END marker written
    count: int = 0                       # nodes declared
    declared: tuple[str, ...] = ()
    pending: tuple[str, ...] = ("start",)
    edges: tuple[tuple[str, str], ...] = ()
    cur: str = ""                        # node being written
    ctype: str = ""                      # its type ("" until the type line)
    step: int = 0                        # index into its step list
    reps: int = 0                        # entries written at a repeating step
    tool: str = ""
    called: tuple[str, ...] = ()         # tools of the tool_call nodes so far
    arg_pos: int = -1                    # schema index of the last argument written
    akeys: tuple[str, ...] = ()          # keys of the node's `assign` mapping so far
    # (node id, key) for every context key a local node writes (its `output_keys`
    # entries and `assign` keys), the node being written included, in writing order
    wkeys: tuple[tuple[str, str], ...] = ()
    # data dependencies (dataflow.py): ``next`` edges, jump targets (``on_failure``
    # and fork ``branches`` targets), (node, key) for the keys a node surely writes,
    # and the nodes a written argument's reference relied on
    nedges: tuple[tuple[str, str], ...] = ()
    jumps: tuple[str, ...] = ()
    skeys: tuple[tuple[str, str], ...] = ()
    relied: tuple[str, ...] = ()
    # the required join (content.py): written, and the pending id designated to be it
    joined: bool = False
    jc: str = ""
    memo: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def reaches(self, a: str, b: str) -> bool:
        """True when ``b`` is reachable from ``a`` along edges (``a == b`` counts)."""
        if a == b:
            return True
        seen = {a}
        todo = [a]
        while todo:
            v = todo.pop()
            for s, d in self.edges:
                if s == v and d not in seen:
                    if d == b:
                        return True
                    seen.add(d)
                    todo.append(d)
        return False

    def written(self) -> dict[str, frozenset[str]]:
        """Node id -> the context keys it writes (nodes that write none are absent);
        memoized on the line state."""
        hit = self.memo.get("written")
        if hit is None:
            acc: dict[str, set[str]] = {}
            for n, k in self.wkeys:
                acc.setdefault(n, set()).add(k)
            hit = self.memo["written"] = {n: frozenset(ks) for n, ks in acc.items()}
        return hit  # type: ignore[no-any-return]


class Step(NamedTuple):
    prefix: str
    kind: str          # fixed | free | tool | args | argentry | outkeys | refs | waits | onfail | entry
    optional: bool
    repeat: bool = False


def _steps(ctype: str) -> tuple[Step, ...]:
    out: list[Step] = []
    for prefix, optional in NODE_FIELDS[ctype]:
        if prefix == "    assign:":
            out += [Step(prefix, "fixed", False), Step("      ", "entry", False, True)]
        elif prefix == "    tool: ":
            out.append(Step(prefix, "tool", False))
        elif prefix == "    arguments:":
            out += [Step(prefix, "args", True), Step(ARG_PREFIX, "argentry", False, True)]
        elif prefix == "    output_keys: " and ctype == "tool_call":
            out.append(Step(prefix, "outkeys", False))
        elif prefix == "    on_failure: ":
            out.append(Step(prefix, "onfail", True))
        elif prefix == "    fork:":
            out += [Step(prefix, "fixed", False), Step("      branches: ", "refs", False)]
        elif prefix == "    join:":
            out += [Step(prefix, "fixed", False), Step("      wait_for: ", "waits", False)]
        else:
            out.append(Step(prefix, "free", optional))
    return tuple(out) + (Step(NEXT_PREFIX, "refs", True),)


_STEPS = {t: _steps(t) for t in NODE_FIELDS}
_STEPS["start"] = (Step(NEXT_PREFIX, "refs", False),)


def initial_state() -> GraphState:
    return GraphState()


def replace(g: GraphState, **changes: Any) -> GraphState:
    """``dataclasses.replace`` for ``GraphState`` without running ``__init__``: the
    next-line state is built at most line ends, so this is on the mask's path. The
    copy starts with an empty memo."""
    new = object.__new__(GraphState)
    d = new.__dict__
    d.update(g.__dict__)
    d.update(changes)
    d["memo"] = {}
    return new


# -- references -------------------------------------------------------------------


@dataclass
class _RefCtx:
    """What one reference list (or single reference) may name, updated per element."""

    gp: GraphPlan
    g: GraphState
    waits: bool
    used: list[str] = field(default_factory=list)
    new_pending: list[str] = field(default_factory=list)
    jump: bool = False  # an ``on_failure`` or ``branches`` list (dataflow.py)

    def _pending(self) -> tuple[str, ...]:
        return self.g.pending + tuple(self.new_pending)

    def copy(self) -> _RefCtx:
        return _RefCtx(self.gp, self.g, self.waits, list(self.used), list(self.new_pending),
                       self.jump)

    def fresh_allowed(self) -> bool:
        if self.waits or len(self._pending()) >= self.gp.max_nodes - self.g.count:
            return False
        c = self.gp.content
        return c is None or not c.join or c.any_fresh(self.g, tuple(self.new_pending))

    def finite(self) -> list[str]:
        """Allowed element texts (without quotes), fresh ids aside (memoized on the
        line state for this list position)."""
        key = ("finite", self.waits, self.jump, tuple(self.used), tuple(self.new_pending))
        hit = self.g.memo.get(key)
        if hit is None or hit[0] is not self.gp:
            hit = self.g.memo[key] = (self.gp, self._finite())
        return hit[1]  # type: ignore[no-any-return]

    def _finite(self) -> list[str]:
        t = self.gp.target + "/"
        # what the line state allows before any element of this list (the
        # reachability walk is done once per line, not once per element)
        key = ("finite_base", self.waits, self.jump)
        base = self.g.memo.get(key)
        if base is None or base[0] is not self.gp:
            cur = self.g.cur
            # a jump may not land on a node a written reference relied on
            barred = frozenset(self.g.relied) if self.jump else frozenset()
            if self.waits:
                out = [t + d for d in self.g.declared if d != cur]
            else:
                out = list(self.gp.externals)
                out += [t + d for d in self.g.declared
                        if d not in barred and not self.g.reaches(d, cur)]
                out += [t + p for p in self.g.pending]
            base = self.g.memo[key] = (self.gp, out)
        out = base[1]
        if not self.waits and self.new_pending:
            out = out + [t + p for p in self.new_pending]
        c = self.gp.content
        if c is not None and c.join and not self.g.joined:
            new = tuple(self.new_pending)
            if self.waits and self.g.cur == self.g.jc:
                out = [t + d for d in sorted(c.join)]  # the required join: branches only
            elif not self.waits and not c.any_fresh(self.g, new):
                out = out + [t + r for r in c.unreferenced(self.g, new)]
        if not self.used:
            return list(out)
        used = set(self.used)
        out = [e for e in out if e not in used]
        if self.waits:
            # the join merges with error_on_conflict: a source may not write a key
            # that a source listed before it writes (wait_for names declared nodes
            # only, whose keys are final; ``start`` writes none, so the list's first
            # element and its closing bracket are always allowed)
            written = self.g.written()
            taken: set[str] = set()
            for u in self.used:
                if u.startswith(t):
                    taken |= written.get(u[len(t):], frozenset())
            if taken:
                out = [e for e in out if taken.isdisjoint(written.get(e[len(t):], ()))]
        return out

    def banned_ids(self) -> set[str]:
        t = self.gp.target + "/"
        used = {u[len(t):] for u in self.used if u.startswith(t)}
        base = self.g.memo.get("declared_set")
        if base is None:
            base = frozenset(self.g.declared) | frozenset(self.g.pending)
            if self.gp.strict_strings:
                base |= _MISREAD_IDS
            self.g.memo["declared_set"] = base
        return set(base) | set(self.new_pending) | used

    def element_ok(self, e: str) -> bool:
        if e in self.finite():
            return True
        t = self.gp.target + "/"
        if not self.fresh_allowed() or not e.startswith(t):
            return False
        f = e[len(t):]
        return _ID.fullmatch(f) is not None and f not in self.banned_ids()

    def element_prefix_ok(self, e: str) -> bool:
        if any(x.startswith(e) for x in self.finite()):
            return True
        if not self.fresh_allowed():
            return False
        t = self.gp.target + "/"
        if t.startswith(e):
            return True
        if not e.startswith(t):
            return False
        f = e[len(t):]
        if not f:
            return True
        if f[0] not in "abcdefghijklmnopqrstuvwxyz" or not set(f) <= _ID_CHARS or len(f) > MAX_ID:
            return False
        return len(f) < MAX_ID or f not in self.banned_ids()

    def may_close(self) -> bool:
        """The list may end here: it named a fresh node if the document owes some."""
        c = self.gp.content
        if self.waits:
            # the required join closes once it names every branch
            return (c is None or self.g.cur != self.g.jc or not self.g.jc
                    or len(self.used) >= len(c.join))
        return bool(self.new_pending) or c is None or not c.must_grow(self.g)

    def any_more(self) -> bool:
        # the budget test first: it is a comparison, ``finite`` walks the graph
        return self.fresh_allowed() or bool(self.finite())

    def makes_pending(self, e: str) -> bool:
        """Naming the element ``e`` makes a node pending (a local id neither declared
        nor pending yet)."""
        t = self.gp.target + "/"
        return e.startswith(t) and e[len(t):] not in self.g.declared and e[len(t):] not in self._pending()

    def add(self, e: str) -> None:
        self.used.append(e)
        t = self.gp.target + "/"
        if e.startswith(t):
            f = e[len(t):]
            if f not in self.g.declared and f not in self._pending():
                self.new_pending.append(f)


def _parsed(gp: GraphPlan, g: GraphState, kind: str, rest: str) -> tuple[_RefCtx, bool, str, bool]:
    """``_parse_refs`` of ``rest`` for a reference line of ``kind``, memoized on the
    line state (the slot, the mask and the checks of one position all parse the same
    text). The returned context must not be changed."""
    key = ("parse", kind, rest)
    hit = g.memo.get(key)
    if hit is None or hit[0] is not gp:
        single = kind == "onfail"
        q = _last_element_start(rest)
        if q > 0 or q == 0 and single:
            # every position of a list shares the parse of the elements before the
            # last one (memoized under its own text): only the last is walked here
            base, ok, state, _closed = _parsed(gp, g, kind, rest[:q])
            if not ok:
                hit = (gp, base, False, "", False)
            elif state == "open":
                ctx = base.copy()
                ok, state, closed = _parse_refs(ctx, rest, single, q)
                hit = (gp, ctx, ok, state, closed)
        if hit is None or hit[0] is not gp:
            ctx = _RefCtx(gp, g, waits=kind == "waits", jump=_is_jump(g, kind))
            ok, state, closed = _parse_refs(ctx, rest, single)
            hit = (gp, ctx, ok, state, closed)
        g.memo[key] = hit
    return hit[1], hit[2], hit[3], hit[4]


def _is_jump(g: GraphState, kind: str) -> bool:
    """The reference list at this line is an ``on_failure`` or fork ``branches`` one."""
    if kind == "onfail":
        return True
    steps = _STEPS["fork"]
    return (kind == "refs" and g.ctype == "fork" and g.step < len(steps)
            and steps[g.step].prefix != NEXT_PREFIX)


def _last_element_start(rest: str) -> int:
    """Index of the quote that opens the last element of ``rest`` (-1: none)."""
    q = rest.rfind('"')
    if q < 0 or rest.count('"') % 2:
        return q
    return rest.rfind('"', 0, q)


def _parse_refs(ctx: _RefCtx, rest: str, single: bool, start: int = -1) -> tuple[bool, str, bool]:
    """Walk a reference list (``[...]``) or a single quoted reference.

    Returns ``(ok, state, closed)``: state is ``"elem:<prefix>"`` inside an element,
    ``"sep"`` after an element, ``"open"`` before the first element's quote.
    ``start``: resume at this index, an element's opening quote, with ``ctx``
    holding the elements before it.
    """
    i = 0
    if start >= 0:
        i = start
    elif not single:
        if not rest:
            return True, "start", False
        if rest[0] != "[":
            return False, "", False
        i = 1
    state = "open"
    while i < len(rest):
        if state == "open":
            if rest[i] != '"':
                return False, "", False
            j = rest.find('"', i + 1)
            if j < 0:
                e = rest[i + 1:]
                return ctx.element_prefix_ok(e), "elem:" + e, False
            e = rest[i + 1:j]
            if not ctx.element_ok(e):
                return False, "", False
            ctx.add(e)
            i = j + 1
            if single:
                return i == len(rest), "closed", True
            state = "sep"
        elif state == "sep":
            if rest[i] == "]":
                return i + 1 == len(rest) and (single or ctx.may_close()), "closed", True
            if not ", ".startswith(rest[i:i + 2]) and not rest[i:].startswith(", "):
                return False, "", False
            if not ctx.any_more():
                return False, "", False
            if len(rest) - i < 2:
                return True, "sep", False
            i += 2
            state = "open"
    return True, state, False


# -- lines ------------------------------------------------------------------------


def _options(gp: GraphPlan, g: GraphState) -> list[Step]:
    """Line kinds the grammar allows at this line start, filtered by the graph."""
    memo = g.memo.get("options")
    if memo is None or memo[0] is not gp:
        memo = (gp, _compute_options(gp, g))
        g.memo["options"] = memo
    return memo[1]


options = _options


def _compute_options(gp: GraphPlan, g: GraphState) -> list[Step]:
    if g.done:
        return [Step("", "any", False)]
    hdr = gp.header_lines()
    if g.header < len(hdr):
        return [Step(hdr[g.header], "fixed", False)]
    out: list[Step] = []
    if not g.ctype and g.cur:  # after the id line: the type line
        return [Step(TYPE_PREFIX, "type", False)]
    steps = _STEPS[g.ctype or "start"]
    for k in range(g.step, len(steps)):
        st = steps[k]
        if st.kind == "argentry" and k > g.step:
            continue  # entries only follow a written `arguments:` line
        if _step_allowed(gp, g, st):
            out.append(st)
        satisfied = st.optional or (st.repeat and k == g.step and g.reps > 0)
        if satisfied and st.kind == "refs" and gp.content is not None and gp.content.must_grow(g):
            satisfied = False  # the document owes nodes: this node must name a fresh one
        if not satisfied:
            return out
    if g.pending:
        out.append(Step(NODE_PREFIX, "id", False))
    elif gp.content is None or not gp.content.owes(g):
        out.append(Step(END_LINE, "end", False))
    return out


def _tool_names(gp: GraphPlan, g: GraphState) -> list[str]:
    """Tools the tool line may name here (the content rules may force a missing one)."""
    if gp.content is None:
        return list(gp.tools)
    return [n for n in gp.tools if gp.content.tool_ok(g, n)]


def _tool_keys(gp: GraphPlan, g: GraphState) -> tuple[tuple[str, bool], ...]:
    return gp.tools.get(g.tool, ())


def _next_arg_keys(gp: GraphPlan, g: GraphState) -> list[str]:
    keys = _tool_keys(gp, g)
    out = []
    for k in range(g.arg_pos + 1, len(keys)):
        out.append(keys[k][0])
        if keys[k][1]:
            break
    return out


def _required_left(gp: GraphPlan, g: GraphState) -> bool:
    return any(req for _k, req in _tool_keys(gp, g)[g.arg_pos + 1:])


def _step_allowed(gp: GraphPlan, g: GraphState, st: Step) -> bool:
    if st.kind == "refs":
        return _RefCtx(gp, g, waits=False).any_more()
    if st.kind == "onfail":
        return _RefCtx(gp, g, waits=False, jump=True).any_more()
    if st.kind == "argentry":
        return bool(_next_arg_keys(gp, g))
    if st.kind == "outkeys":
        return not _required_left(gp, g)
    return True


def _types(gp: GraphPlan, g: GraphState) -> list[str]:
    """Node types the type line may name here (memoized on the line state)."""
    hit = g.memo.get("types")
    if hit is None or hit[0] is not gp:
        hit = g.memo["types"] = (gp, [t for t in gp.node_types if _type_allowed(gp, g, t)])
    return hit[1]  # type: ignore[no-any-return]


def _type_allowed(gp: GraphPlan, g: GraphState, t: str) -> bool:
    if t == "start" or t not in gp.node_types:
        return False
    if t == "assert" and gp.strict_strings and not gp.variables:
        return False  # its condition can only be "{{ name }}" (see _strings_ok)
    if gp.content is not None and not gp.content.type_ok(g, t):
        return False
    if t == "fork":
        return _RefCtx(gp, g, waits=False, jump=True).any_more()
    return True


def declarable(gp: GraphPlan, g: GraphState) -> list[str]:
    """Pending ids the next node may take: the required join's designated node only
    once every branch is declared."""
    if g.jc and gp.content is not None and not gp.content.branches_done(g):
        return [p for p in g.pending if p != g.jc]
    return list(g.pending)


def used_keys(gp: GraphPlan, g: GraphState) -> frozenset[str]:
    """Keys the node's next ``assign`` key or output key may not be: its own assign
    keys and, for a branch of the required join, the other branches' keys."""
    taken = gp.content.taken_keys(g) if gp.content is not None else frozenset()
    return frozenset(g.akeys) | taken if taken else frozenset(g.akeys)


def untaken(gp: GraphPlan, key: str, taken: frozenset[str]) -> str:
    """The fewest ``x`` that make ``key`` + them a key not in ``taken`` (and, for the
    ``agenticrt`` target, one the runtime reads as a string)."""
    add = ""
    while key + add in taken or gp.strict_strings and not closes_as_string(key + add):
        add += "x"
    return add


def arg_vars(gp: GraphPlan, g: GraphState) -> frozenset[str]:
    """Names a ``tool_call`` argument's templates may read: the plan's context
    variables and the keys surely written before this node runs (dataflow.py)."""
    hit = g.memo.get("arg_vars")
    if hit is None or hit[0] is not gp:
        up = upstream_keys(g)
        hit = g.memo["arg_vars"] = (gp, gp.variables | up if up else gp.variables)
    return hit[1]  # type: ignore[no-any-return]


def template_vars(gp: GraphPlan, g: GraphState, line: str) -> frozenset[str]:
    """Names the templates of the line ``line`` (no newline) may read."""
    if g.ctype == "tool_call" and line.startswith(ARG_PREFIX):
        return arg_vars(gp, g)
    return gp.variables


def _vars_ok(gp: GraphPlan, text: str, complete: bool) -> bool:
    return vars_ok(gp.variables, text, complete)


def vars_ok(variables: frozenset[str], text: str, complete: bool) -> bool:
    """Every ``{`` in ``text`` starts ``{{ name }}`` with one of ``variables`` (or, at
    the end of unfinished text, a prefix of one)."""
    i = text.find("{")
    while i >= 0:
        rest = text[i:]
        j = rest.find(" }}")
        if j < 0:
            return not complete and any(("{{ " + v + " }}").startswith(rest) for v in variables)
        if not rest.startswith("{{ ") or rest[3:j] not in variables:
            return False
        i = text.find("{", i + j + 3)
    return True


def _strings_ok(gp: GraphPlan, st: Step, rest: str) -> bool:
    """For the ``agenticrt`` target: every closed string of a free line reaches the
    runtime as a string, and a condition is a template (``"true"`` and ``"false"``
    would be booleans)."""
    if st.prefix == COND_PREFIX and rest[1:2] not in ("", "{"):
        return False
    if st.kind == "argentry":
        rest = '"' + rest  # the line prefix opened the key's quote
    closed, _open = string_spans(rest)
    return all(closes_as_string(c) for c in closed)


def _content_ok(gp: GraphPlan, g: GraphState, st: Step, rest: str, complete: bool) -> bool:
    kind = st.kind
    if (gp.strict_strings and kind in ("free", "entry", "outkeys", "argentry") and '"' in rest
            and not _strings_ok(gp, st, rest)):
        return False
    if kind in ("fixed", "end"):
        return rest == "" or not complete and rest == ""
    if kind == "any":
        return True
    if kind == "entry":
        if not rest.startswith('"'):
            return rest == "" and not complete
        j = rest.find('"', 1)
        if j < 0:
            return not complete  # a finished line has closed its key
        if rest[1:j] in used_keys(gp, g):
            return False
        return _vars_ok(gp, rest, complete)
    if kind in ("free", "outkeys"):
        if st.prefix == "    output_keys: " and not used_keys(gp, g).isdisjoint(
                _KEY_IN_LIST.findall(rest)):
            return False
        return _vars_ok(gp, rest, complete)
    if kind == "id":
        full = [p + '"' for p in declarable(gp, g)]
        return rest in full if complete else any(f.startswith(rest) for f in full)
    if kind == "type":
        types = _types(gp, g)
        return rest in types if complete else any(t.startswith(rest) for t in types)
    if kind == "tool":
        full = [f'"{n}"' for n in _tool_names(gp, g)]
        return rest in full if complete else any(f.startswith(rest) for f in full)
    if kind == "args":
        keys = _tool_keys(gp, g)
        opts = ([" {}"] if not any(r for _k, r in keys) else []) + ([""] if keys else [])
        return rest in opts if complete else any(o.startswith(rest) for o in opts)
    if kind == "argentry":
        ktexts = [k + '": ' for k in _next_arg_keys(gp, g)]
        for k in ktexts:
            if rest.startswith(k):
                return vars_ok(arg_vars(gp, g), rest[len(k):], complete)
        return not complete and any(k.startswith(rest) for k in ktexts)
    if kind in ("refs", "waits", "onfail"):
        _ctx, ok, _state, closed = _parsed(gp, g, kind, rest)
        return ok and (closed or not complete)
    return False


def line_ok(gp: GraphPlan, g: GraphState, text: str, complete: bool) -> bool:
    """Can ``text`` (a line without its newline) be, or become, an allowed line?"""
    for st in _options(gp, g):
        if text.startswith(st.prefix):
            if _content_ok(gp, g, st, text[len(st.prefix):], complete):
                return True
        elif not complete and st.prefix.startswith(text):
            return True
    return False


def apply_line(gp: GraphPlan, g: GraphState, text: str) -> GraphState:
    """The state after the complete, allowed line ``text``."""
    if g.done:
        return g
    hdr = gp.header_lines()
    if g.header < len(hdr):
        g2 = replace(g, header=g.header + 1)
        if g.header + 1 == len(hdr):  # the start node is declared by the header
            g2 = replace(g2, count=1, declared=("start",), pending=(), cur="start",
                         ctype="start", step=0)
        return g2
    if text == END_LINE:
        return replace(g, done=True)
    if text.startswith(NODE_PREFIX):
        nid = text[len(NODE_PREFIX):-1]
        return replace(g, count=g.count + 1, declared=g.declared + (nid,),
                       pending=tuple(p for p in g.pending if p != nid), cur=nid, ctype="",
                       step=0, reps=0, tool="", arg_pos=-1, akeys=())
    if not g.ctype:
        return replace(g, ctype=text[len(TYPE_PREFIX):], step=0, reps=0)
    steps = _STEPS[g.ctype]
    for k in range(g.step, len(steps)):
        st = steps[k]
        if text.startswith(st.prefix) and _content_ok(gp, g, st, text[len(st.prefix):], True):
            rest = text[len(st.prefix):]
            key = _after_key(gp, k, st, rest)
            hit = g.memo.get(key)
            if hit is None or hit[0] is not gp:
                hit = g.memo[key] = (gp, _advance(gp, g, k, st, rest))
            return hit[1]  # type: ignore[no-any-return]
    return g


def _after_key(gp: GraphPlan, k: int, st: Step, rest: str) -> tuple[Any, ...]:
    """What ``_advance`` reads of a complete line of step ``k`` besides the state, as a
    memo key: lines that lead to the same next state share one object (and with it
    the memos of the next line start), so the line check of a token that ends a
    value (``", "\n``) and the value's real end compute that state once. A free
    value's text is not read at all; an argument's value only for whether its
    templates read an earlier output; keys and lists are read whole."""
    if st.kind in ("free", "fixed") and st.prefix != "    output_keys: ":
        return ("after", k)
    if st.kind == "entry":
        return ("after", k, rest[1:rest.index('"', 1)])
    if st.kind == "argentry":
        key = rest[: rest.index('"')]
        return ("after", k, key, any(v not in gp.variables for v in template_names(rest[len(key) + 3:])))
    return ("after", k, rest)


def _advance(gp: GraphPlan, g: GraphState, k: int, st: Step, rest: str) -> GraphState:
    reps = g.reps + 1 if st.repeat and k == g.step else (1 if st.repeat else 0)
    nxt = k if st.repeat else k + 1
    g2 = replace(g, step=nxt, reps=reps if st.repeat else 0)
    if st.kind == "tool":
        return replace(g2, tool=rest[1:-1], called=g.called + (rest[1:-1],))
    if st.kind == "entry":
        key = rest[1:rest.index('"', 1)]
        sure = ((g.cur, key),) if readable_key(key) else ()
        return replace(g2, akeys=g.akeys + (key,), wkeys=g.wkeys + ((g.cur, key),),
                       skeys=g.skeys + sure)
    if st.prefix == "    output_keys: ":
        keys = tuple(dict.fromkeys(_KEY_IN_LIST.findall(rest)))
        if not keys:
            return g2
        # one output key holds the whole result; of several, only those it has
        sure = ((g.cur, keys[0]),) if len(keys) == 1 and readable_key(keys[0]) else ()
        return replace(g2, wkeys=g.wkeys + tuple((g.cur, k) for k in keys), skeys=g.skeys + sure)
    if st.kind == "args" and rest == " {}":
        return replace(g2, step=k + 2)  # no entries follow
    if st.kind == "argentry":
        key = rest[: rest.index('"')]
        names = [n for n, _r in _tool_keys(gp, g)]
        g2 = replace(g2, arg_pos=names.index(key, g.arg_pos + 1))
        if any(v not in gp.variables for v in template_names(rest[len(key) + 3:])):
            # the value reads an earlier output: what made it sure must stay so
            g2 = replace(g2, relied=g.relied + tuple(sorted({g.cur} | upstream(g))))
        return g2
    if st.kind in ("refs", "waits", "onfail"):
        ctx = _parsed(gp, g, st.kind, rest)[0]  # the line check just parsed it
        t = gp.target + "/"
        edges = list(g.edges)
        local = [e[len(t):] for e in ctx.used if e.startswith(t)]
        for d in local:
            edges.append((d, g.cur) if st.kind == "waits" else (g.cur, d))
        g2 = replace(g2, pending=g.pending + tuple(ctx.new_pending), edges=tuple(edges))
        c = gp.content
        if c is not None and c.join and not g.joined:
            if st.kind == "waits" and c.join <= set(local):
                g2 = replace(g2, joined=True, jc="")
            elif not g.jc and c.slack(g2) < 0:
                # the list spent the join's slot on a fresh id: that node becomes the join
                extra = [p for p in ctx.new_pending if p not in c.join]
                if extra:
                    g2 = replace(g2, jc=extra[-1])
        if st.prefix == NEXT_PREFIX:
            return replace(g2, nedges=g.nedges + tuple((g.cur, d) for d in local))
        if ctx.jump:
            return replace(g2, jumps=g.jumps + tuple(local))
        return g2
    return g2


# -- what may come next, for the mask ----------------------------------------------


class Slot(NamedTuple):
    """What may follow the cursor on the current line.

    ``free``: nothing line-local is constrained (only newlines and ``{`` matter).
    ``texts``: otherwise, the allowed continuations up to the end of the constrained
    span; any prefix of one is allowed, a token running past one is checked exactly.
    ``fresh``: in a reference's id part, the length of the id typed so far, meaning
    "any id characters that keep the id within 32 characters" are allowed too
    (``-1``: not applicable; ``0``: the first character must be a letter).
    """

    free: bool
    texts: tuple[str, ...] = ()
    fresh: int = -1
    fresh_entry: str = ""  # a text after which the fresh-id part begins
    check_quotes: bool = False  # free, but a token with a quote is checked exactly
    # (with ``check_quotes``) inside a string whose content could still close as a
    # value the target runtime misreads: the quote is checked, not an assign key
    close_check: bool = False


#: the slot at a line start, by the line kinds allowed there (it depends on nothing else)
_LINE_STARTS: dict[tuple[Step, ...], Slot] = BoundedMemo(CLOSURE_MEMO_ENTRIES)


def slot(gp: GraphPlan, g: GraphState, line: str) -> Slot:
    """Describe what may follow ``line`` (the current partial line); memoized on the
    line state (the mask of a line's last position describes the next line's start,
    which its first position then asks for again)."""
    key = ("slot", line)
    hit = g.memo.get(key)
    if hit is None or hit[0] is not gp:
        if line:
            sl = _slot(gp, g, line)
        else:
            opts = tuple(_options(gp, g))
            known = _LINE_STARTS.get(opts)
            if known is None:
                known = _LINE_STARTS[opts] = _slot(gp, g, line)
            sl = known
        hit = g.memo[key] = (gp, sl)
    return hit[1]  # type: ignore[no-any-return]


def _slot(gp: GraphPlan, g: GraphState, line: str) -> Slot:
    opts = _options(gp, g)
    texts: list[str] = []
    for st in opts:
        if st.kind == "any":
            return Slot(True)
        if not line.startswith(st.prefix):
            if st.prefix.startswith(line):
                texts.append(st.prefix[len(line):])
            continue
        rest = line[len(st.prefix):]
        kind = st.kind
        if kind == "entry" and rest.count('"') < 2:
            key = rest[1:]
            if gp.max_string is not None and len(key) >= gp.max_string and key not in used_keys(gp, g):
                if not gp.strict_strings or closes_as_string(key):
                    return Slot(False, ('"',))
                return Slot(False, ('x"',))
            return Slot(True, check_quotes=True)  # an assign key: unique in its mapping
        if gp.strict_strings and st.prefix == COND_PREFIX and rest in ("", '"'):
            return Slot(False, ('"{{ '[len(rest):],))  # a condition is a template here
        if st.prefix == "    output_keys: " and used_keys(gp, g):
            # a branch of the required join: its keys avoid the other branches' keys,
            # so a closing quote is checked exactly
            open_raw = string_spans(rest)[1]
            if gp.max_string is not None and open_raw is not None and len(open_raw) >= gp.max_string:
                return Slot(False, (untaken(gp, open_raw, used_keys(gp, g)) + '"',))
            return Slot(True, check_quotes=True, close_check=True)
        if kind in ("free", "entry", "outkeys") or (kind == "argentry" and '": ' in rest):
            names = sorted(arg_vars(gp, g) if kind == "argentry" else gp.variables)
            i = rest.rfind("{{ ")
            if i >= 0 and rest.find(" }}", i) < 0:
                part = rest[i + 3:]
                return Slot(False, tuple((v + " }}")[len(part):] for v in names
                                         if (v + " }}").startswith(part)))
            if rest.endswith("{{"):
                return Slot(False, tuple(" " + v + " }}" for v in names))
            if rest.endswith("{"):
                return Slot(False, tuple("{ " + v + " }}" for v in names))
            body = '"' + rest if kind == "argentry" else rest  # the prefix opened a quote
            open_raw = string_spans(body)[1] if gp.strict_strings else None
            if gp.max_string is not None and _string_full(body, gp.max_string):
                if open_raw is None or closes_as_string(open_raw):
                    return Slot(False, ('"',))
                return Slot(False, ('x"',))  # one more character makes it a string
            if gp.strict_strings and (open_raw is None or could_misread(open_raw)):
                # outside a string a token may open and close one (``""``, ``"2"``)
                return Slot(True, check_quotes=True, close_check=True)
            return Slot(True)
        if kind in ("fixed", "end"):
            return Slot(False, ("",))
        if kind == "id":
            full = [p + '"' for p in declarable(gp, g)]
            return Slot(False, tuple(f[len(rest):] for f in full if f.startswith(rest)))
        if kind == "type":
            return Slot(False, tuple(t[len(rest):] for t in _types(gp, g) if t.startswith(rest)))
        if kind == "tool":
            full = [f'"{n}"' for n in _tool_names(gp, g)]
            return Slot(False, tuple(f[len(rest):] for f in full if f.startswith(rest)))
        if kind == "args":
            keys = _tool_keys(gp, g)
            o = ([" {}"] if not any(r for _k, r in keys) else []) + ([""] if keys else [])
            return Slot(False, tuple(x[len(rest):] for x in o if x.startswith(rest)))
        if kind == "argentry":
            ks = [k + '": ' for k in _next_arg_keys(gp, g)]
            return Slot(False, tuple(k[len(rest):] for k in ks if k.startswith(rest)))
        if kind in ("refs", "waits", "onfail"):
            return _ref_slot(gp, g, kind, rest)
    return Slot(False, tuple(texts))


def ends_line(gp: GraphPlan, g: GraphState, line: str) -> bool:
    """True when ``line`` is inside a type, a node id or a tool name: each text of its
    slot finishes the line (only a newline may follow it)."""
    for st in _options(gp, g):
        if st.prefix and line.startswith(st.prefix):
            return st.kind in ("type", "id", "tool")
    return False


def _string_full(rest: str, cap: int) -> bool:
    """True when ``rest`` ends inside a string whose content reached ``cap`` characters
    at a point where a closing quote is grammatical (not inside an escape, a template
    or a multi-byte character)."""
    inside = False
    start = 0
    i = 0
    n = len(rest)
    while i < n:
        c = rest[i]
        if inside and c == "\\":
            i += 2
            continue
        if c == '"':
            inside = not inside
            start = i + 1
        i += 1
    if not inside or n - start < cap:
        return False
    tail = rest[start:]
    if tail.endswith("\\") and (len(tail) - len(tail.rstrip("\\"))) % 2 == 1:
        return False
    if "\\u" in tail[-6:]:
        k = tail.rfind("\\u")
        if len(tail) - k < 6:
            return False
    try:
        tail[-4:].encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character may be cut at the start of the window; only an
        # unfinished one at the end matters
        raw = tail.encode("latin-1")
        j = len(raw) - 1
        while j >= 0 and raw[j] & 0xC0 == 0x80:
            j -= 1
        if j >= 0 and raw[j] >= 0xC0:
            need = 2 if raw[j] < 0xE0 else 3 if raw[j] < 0xF0 else 4
            if len(raw) - j < need:
                return False
    return True


def ref_context(gp: GraphPlan, g: GraphState, line: str) -> tuple[_RefCtx, str] | None:
    """When ``line`` ends inside a reference element: the reference context (what the
    list may still name) and the element's text so far; else ``None``.

    Also ``None`` inside a ``wait_for`` element once some node writes context keys:
    whether a separator may follow the element then depends on which source it
    names (the sources left that write no key of the listed ones), so the verdicts
    of the tokens that close it cannot be shared across elements and the fast path
    checks each such token exactly."""
    for st in _options(gp, g):
        if st.kind in ("refs", "waits", "onfail") and line.startswith(st.prefix):
            if st.kind == "waits" and g.wkeys:
                return None
            ctx, ok, state, _closed = _parsed(gp, g, st.kind, line[len(st.prefix):])
            if ok and state.startswith("elem:"):
                return ctx, state[5:]
            return None
    return None


def _ref_slot(gp: GraphPlan, g: GraphState, kind: str, rest: str) -> Slot:
    ctx, ok, state, _closed = _parsed(gp, g, kind, rest)
    if not ok or state == "closed":
        return Slot(False, ("",))
    if state == "start":
        return Slot(False, ('["',))
    if state == "sep":
        tail = rest[len(rest.rstrip(", ")):] if rest.endswith((",", ", ")) else ""
        seps = [", \""[len(tail):]] if ctx.any_more() else []
        return Slot(False, tuple(seps + (["]"] if not tail and ctx.may_close() else [])))
    if state == "open":
        return Slot(False, ('"',))
    e = state[5:]
    texts = [x[len(e):] + '"' for x in ctx.finite() if x.startswith(e)]
    fresh = -1
    if ctx.fresh_allowed():
        t = gp.target + "/"
        if t.startswith(e) and len(e) < len(t):
            texts.append(t[len(e):])
            return Slot(False, tuple(dict.fromkeys(texts)), -1, t[len(e):])
        if e.startswith(t):
            f = e[len(t):]
            fresh = len(f)
            if f and f not in ctx.banned_ids():
                texts.append('"')
    return Slot(False, tuple(dict.fromkeys(texts)), fresh)
