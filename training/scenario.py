"""Random but sensible generate_subgraph requests, each with its correct subgraph.

A scenario is a chain of steps (tool calls, model calls, a fan-out/fan-in, a check,
a nested plan, a hand-over to a library subgraph). The same random choices write
both the request (goal text, tools, library, context, budget) and the answer (a
list of :class:`NodeSpec`), so the answer is exactly what the goal asks for with
what the request grants.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from training import variants
from training.pools import (
    EXTRA_VARS,
    LIBRARY,
    LLM_STEPS,
    TARGET_STEMS,
    TEXT_ARGS,
    TOOLS,
    VALUES,
    LibSpec,
    ToolSpec,
)

__all__ = ["NodeSpec", "Scenario", "make_scenario"]

MIN_NODES = 3
MAX_NODES = 12


@dataclass
class NodeSpec:
    """One node of the answer: id, type, type-specific fields, and ``next`` paths."""

    id: str
    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    next: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    """A request (in the request JSON format) and the node list that answers it."""

    request: dict[str, Any]
    nodes: list[NodeSpec]

    @property
    def target_path(self) -> str:
        """The path the answer's block is written at."""
        return str(self.request["target_path"])


@dataclass
class _Builder:
    """Collects the goal phrases, the context variables and the ids taken as steps are added."""

    rng: random.Random
    target: str
    phrases: list[str] = field(default_factory=list)
    vars: dict[str, tuple[str, Any]] = field(default_factory=dict)
    taken: set[str] = field(default_factory=lambda: {"start", "end"})
    last_output: str | None = None

    def path(self, node_id: str) -> str:
        return f"{self.target}/{node_id}"

    def unique_id(self, base: str) -> str:
        out, i = base, 2
        while out in self.taken:
            out, i = f"{base}_{i}", i + 1
        self.taken.add(out)
        return out

    def add_var(self, name: str, type_: str, literal: str) -> None:
        if name in self.vars:
            return
        value: Any = literal
        if type_ == "integer":
            value = int(literal)
        elif type_ == "number":
            value = float(literal)
        elif type_ == "boolean":
            value = literal == "true"
        self.vars[name] = (type_, value)


def _fill_tool(b: _Builder, tool: ToolSpec, *, allow_prev: bool,
               prev_arg: str | None = None) -> tuple[str, dict[str, str]]:
    """The goal phrase for ``tool`` and the matching ``arguments`` mapping; ``prev_arg``
    names the argument that must take the previous step's output."""
    fills: dict[str, str] = {}
    args: dict[str, str] = {}
    used_prev = False
    for arg in tool.args:
        if not arg.required:
            continue
        takes_prev = arg.name == prev_arg or (prev_arg is None and arg.name in TEXT_ARGS)
        if allow_prev and not used_prev and b.last_output and takes_prev:
            fills[arg.name] = f"the {b.last_output.replace('_', ' ')}"
            args[arg.name] = "{{ " + b.last_output + " }}"
            used_prev = True
            continue
        literal = b.rng.choice(VALUES.get(arg.name) or variants.LOOKUP_VALUES[arg.name])
        as_var = arg.name in b.vars or b.rng.random() < (0.7 if arg.name in TEXT_ARGS else 0.45)
        if as_var:
            b.add_var(arg.name, arg.type, literal)
            fills[arg.name] = "{{ " + arg.name + " }}"
            args[arg.name] = "{{ " + arg.name + " }}"
        else:
            fills[arg.name] = f'"{literal}"'
            args[arg.name] = literal
    # An optional argument is passed exactly when a context variable of its name exists.
    for arg in tool.args:
        if arg.required:
            continue
        if arg.name not in b.vars and b.rng.random() < 0.2:
            b.add_var(arg.name, arg.type, b.rng.choice(VALUES[arg.name]))
    ordered = {}
    for arg in tool.args:
        if arg.name in args:
            ordered[arg.name] = args[arg.name]
        elif arg.name in b.vars:
            ordered[arg.name] = "{{ " + arg.name + " }}"
    return tool.phrase.format(**fills), ordered


def _tool_node(b: _Builder, tool: ToolSpec, *, allow_prev: bool = True, prev_arg: str | None = None) -> NodeSpec:
    phrase, args = _fill_tool(b, tool, allow_prev=allow_prev, prev_arg=prev_arg)
    b.phrases.append(phrase)
    node = NodeSpec(b.unique_id(tool.name), "tool_call",
                    {"tool": tool.name, "arguments": args, "output_keys": [tool.output]})
    b.last_output = tool.output
    return node


def _llm_node(b: _Builder) -> NodeSpec:
    step = b.rng.choice(LLM_STEPS)
    if b.last_output:
        src = "{{ " + b.last_output + " }}"
        b.phrases.append(f"{step.phrase} from the {b.last_output}")
    else:
        b.add_var("topic", "string", b.rng.choice(VALUES["topic"]))
        src = "{{ topic }}"
        b.phrases.append(f"{step.phrase} about {{{{ topic }}}}")
    node = NodeSpec(b.unique_id(step.id), "llm_call",
                    {"prompt_template": step.template.format(src=src), "output_keys": [step.output]})
    b.last_output = step.output
    return node


def _link(nodes: list[NodeSpec], b: _Builder) -> None:
    """Chain nodes that have no successor yet to the node after them."""
    for cur, nxt in zip(nodes, nodes[1:], strict=False):
        if not cur.next and cur.type not in ("fork",):
            cur.next = [b.path(nxt.id)]


def _goal(phrases: list[str], rng: random.Random, parallel: bool) -> str:
    if parallel and len(phrases) >= 2:
        head = f"At the same time, {phrases[0]} and {phrases[1]}"
        rest = phrases[2:]
    else:
        head = phrases[0][0].upper() + phrases[0][1:]
        rest = phrases[1:]
    text = head
    for i, p in enumerate(rest):
        last = i == len(rest) - 1
        text += rng.choice([", then ", "; then ", " and then "]) if not last else rng.choice(
            [", and finally ", ", then ", " and "])
        text += p
    return text + "."


def make_scenario(rng: random.Random, *, vary: bool = False) -> Scenario:
    """One random request and its answer, within 3..12 nodes. With ``vary``, tools
    appear under random aliases and phrasings, and some chains start with a lookup
    whose output a later call takes (:mod:`training.variants`)."""
    while True:
        sc = _try_scenario(rng, vary)
        if sc is not None:
            return sc


def _target(rng: random.Random) -> str:
    stem = rng.choice(TARGET_STEMS)
    n = rng.randint(1, 99)
    if rng.random() < 0.2:
        return f"/dynamic/{rng.choice(TARGET_STEMS)}/{stem}_{n}"
    return f"/dynamic/{stem}_{n}"


def _try_scenario(rng: random.Random, vary: bool = False) -> Scenario | None:
    target = _target(rng)
    b = _Builder(rng, target)
    start = NodeSpec("start", "start")
    body: list[NodeSpec] = []
    no_tools = rng.random() < 0.08
    k = 0 if no_tools else rng.choices([1, 2, 3, 4], weights=[3, 4, 3, 2])[0]
    tools = rng.sample(TOOLS, k)
    lookup = rng.choice(variants.LOOKUPS) if vary and k >= 1 and rng.random() < 0.3 else None
    prev_args: dict[int, str] = {}  # position in tools -> argument taking the previous output
    if lookup is not None:
        then = variants.consumer(lookup)
        rest = [t for t in tools if t.name != then.name][: k - 1]
        tools = [lookup.tool, then, *rest]
        prev_args[1] = lookup.arg
    if vary:
        tools = [t if t.name not in variants.ALIASES else variants.varied(t, rng) for t in tools]
    parallel = k >= 2 and lookup is None and rng.random() < 0.25
    gen_sub = rng.random() < 0.1

    if parallel:
        left = _tool_node(b, tools[0], allow_prev=False)
        right = _tool_node(b, tools[1], allow_prev=False)
        fork = NodeSpec("fan_out", "fork", {"branches": [b.path(left.id), b.path(right.id)]})
        join = NodeSpec("join", "join", {"wait_for": [b.path(left.id), b.path(right.id)]})
        left.next = [b.path(join.id)]
        right.next = [b.path(join.id)]
        body += [fork, left, right, join]
        rest_tools = tools[2:]
    else:
        rest_tools = tools
    for i, t in enumerate(rest_tools):
        body.append(_tool_node(b, t, prev_arg=prev_args.get(i)))
    if no_tools or rng.random() < 0.2:
        body.append(_llm_node(b))
        if no_tools and rng.random() < 0.4:
            body.append(_llm_node(b))
    if b.last_output and rng.random() < 0.2:
        out = b.last_output
        b.phrases.append(f"check that the {out} is not empty")
        body.append(NodeSpec(b.unique_id("check"), "assert", {"condition": "{{ " + out + " }}"}))
    if gen_sub and b.last_output:
        out = b.last_output
        b.phrases.append(f"plan the follow-up steps for the {out}")
        body.append(NodeSpec(b.unique_id("plan_next"), "generate_subgraph", {
            "prompt_template": "Plan the follow-up steps for {{ " + out + " }}.",
            "output_keys": ["next_plan"]}))
    lib_pool = list(LIBRARY)
    rng.shuffle(lib_pool)
    library: list[LibSpec] = lib_pool[: rng.choice([0, 0, 1, 1, 2, 3])]
    handover = library and rng.random() < 0.35
    if b.last_output and not handover and rng.random() < 0.2:
        key = rng.choice(["answer", "final", "result_text", "report_body"])
        b.phrases.append(f"keep the {b.last_output} as {key}")
        body.append(NodeSpec(b.unique_id("collect"), "assign", {"assign": {key: "{{ " + b.last_output + " }}"}}))
    nodes = [start, *body]
    if handover:
        lib = rng.choice(library)
        b.phrases.append(lib.phrase)
        _link(nodes, b)
        nodes[-1].next = [lib.path]
    else:
        nodes.append(NodeSpec("end", "end"))
        _link(nodes, b)
    if not body or len(nodes) > MAX_NODES:
        return None

    chosen = {t.description for t in tools}  # a tool keeps its description under an alias
    pool = [*TOOLS, *(lk.tool for lk in variants.LOOKUPS)] if vary else list(TOOLS)
    distractors = [t for t in pool if t.description not in chosen]
    rng.shuffle(distractors)
    if vary:
        distractors = [variants.varied(t, rng) if t.name in variants.ALIASES else t for t in distractors]
    n_extra = rng.randint(0, max(0, MAX_NODES - k)) if rng.random() < 0.7 else rng.randint(0, 2)
    granted = [*tools, *distractors[:n_extra]]
    rng.shuffle(granted)
    for name in rng.sample(sorted(EXTRA_VARS), rng.choice([0, 0, 1, 2])):
        b.add_var(name, *EXTRA_VARS[name])

    max_nodes = max(MIN_NODES, len(nodes) + rng.choice([0, 0, 1, 2, 3, 5]))
    max_nodes = min(MAX_NODES, max_nodes)
    var_items = list(b.vars.items())
    rng.shuffle(var_items)
    context: dict[str, Any] = {
        "available_vars": {n: t for n, (t, _) in var_items},
        "values": {n: v for n, (_, v) in var_items},
    }
    if rng.random() < 0.3:
        perms = [f"tool:{t.name}" for t in granted]
        used_types = {n.type for n in nodes}
        perms += [t for t in ("generate_subgraph", "llm_call") if t in used_types]
        context["permissions"] = perms
    request: dict[str, Any] = {
        "target_path": target,
        "prompt": _goal(b.phrases, rng, parallel),
        "context": context,
        "tools": [t.to_json() for t in granted],
        "library": [lib.to_json() for lib in library],
        "budget": {"max_nodes": max_nodes, "max_tokens": rng.choice([512, 768, 1024]), "timeout_sec": 30,
                   "max_depth": 1 if gen_sub else rng.choice([0, 1])},
    }
    return Scenario(request, nodes)
