"""Plan -> EBNF (xgrammar dialect) over the canonical generation profile.

The grammar fixes the document's shape: the block frame, the key order and
indentation of every node type, the string escapes of the canonical form and the
``{{ name }}`` template syntax. It is deliberately generic in what changes per
request: node ids, tool names and argument keys are plain patterns here and the
graph layer (``agentic_llm.grammar.graph``) narrows them to the plan's finite sets
at decode time. Only the node-type whitelist enters the text, so a handful of
compiled grammars serve every plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from agentic_llm.dsl.paths import PATH_CHAR_CLASS, PATH_REF_CHAR_CLASS

__all__ = ["GrammarSpec", "build_ebnf", "NODE_FIELDS"]

# Per node type: its field lines after `type:`, in canonical order, as
# (line prefix, optional). Both the EBNF and the graph layer are built from this.
NODE_FIELDS: dict[str, tuple[tuple[str, bool], ...]] = {
    "start": (),
    "end": (("    termination_mode: ", True),),
    "assign": (("    assign:", False),),
    "tool_call": (("    tool: ", False), ("    arguments:", True), ("    output_keys: ", False)),
    "assert": (("    condition: ", False), ("    on_failure: ", True)),
    "fork": (("    fork:", False),),
    "join": (("    join:", False),),
    "generate_subgraph": (("    prompt_template: ", False), ("    output_keys: ", False)),
    "dsl_call": (("    prompt_template: ", False), ("    llm_tool_name: ", False),
                 ("    output_keys: ", False)),
    "llm_call": (("    prompt_template: ", False), ("    output_keys: ", False)),
    "codelet_call": (("    runtime: ", False), ("    code: ", False), ("    security: ", True)),
}

_BODIES: dict[str, str] = {
    "end": '"end\\n" ("    termination_mode: " ("hard" | "soft") "\\n")?',
    "assign": '"assign\\n    assign:\\n" entry+',
    "tool_call": ('"tool_call\\n    tool: \\"" name "\\"\\n" '
                  '("    arguments:" (" {}\\n" | "\\n" argentry+))? "    output_keys: " keys "\\n"'),
    "assert": '"assert\\n    condition: " cond "\\n" ("    on_failure: " ref "\\n")?',
    "fork": '"fork\\n    fork:\\n      branches: " refs "\\n"',
    "join": '"join\\n    join:\\n      wait_for: " refs "\\n"',
    "generate_subgraph": '"generate_subgraph\\n    prompt_template: " str "\\n    output_keys: " keys "\\n"',
    "dsl_call": ('"dsl_call\\n    prompt_template: " str "\\n    llm_tool_name: " str '
                 '"\\n    output_keys: " keys "\\n"'),
    "llm_call": '"llm_call\\n    prompt_template: " str "\\n    output_keys: " keys "\\n"',
    "codelet_call": ('"codelet_call\\n    runtime: " str "\\n    code: " str "\\n" '
                     '("    security: " str "\\n")?'),
}

# Characters the canonical form writes as \uXXXX, and the escapes it uses.
_RAW_CHAR = r'[^"\\\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]'
_ESCAPE = (r'"\\" ["\\\\nrt] | "\\u00" [01] [0-9a-f] | "\\u007f" | "\\u00" [89] [0-9a-f] '
           r'| "\\u202" [89] | "\\ufeff" | "\\ufff" [ef]')


def _lit(text: str) -> str:
    """An EBNF string literal for ``text``."""
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class GrammarSpec:
    """What of a plan enters the grammar text (the node-type whitelist); it keys the
    compile cache."""

    node_types: tuple[str, ...]

    @classmethod
    def from_plan(cls, plan) -> GrammarSpec:  # type: ignore[no-untyped-def]
        return cls(tuple(plan.node_types))

    @property
    def fingerprint(self) -> str:
        return json.dumps(list(self.node_types))


def build_ebnf(spec: GrammarSpec) -> str:
    """The EBNF text of ``spec``'s grammar (root rule ``root``).

    Only the node-type whitelist enters the text; template braces are plain string
    characters here (a ``{{ name }}`` alternative inside the string repetition makes
    xgrammar's masks three orders of magnitude slower) and the graph layer allows a
    ``{`` only as the start of ``{{ name }}`` with a plan variable;
    the target path, signature, references, ids, tool names, argument keys and
    variable names are generic patterns that the graph layer narrows per plan.
    Repetition bounds (``{0,31}``) are left to the graph layer too: they multiply
    xgrammar's compile time.
    """
    content = [n for n in spec.node_types if n in _BODIES]
    part = f"part ::= {_RAW_CHAR} | {_ESCAPE}"
    cond = '"true" | "false" | "{{ " var " }}"'
    rules = [
        'root ::= "### AgenticDSL `" path "`\\n```yaml\\n# --- BEGIN AgenticDSL ---\\n'
        'graph_type: subgraph\\n" ("signature: " str "\\n")? "entry: \\"start\\"\\nnodes:\\n'
        '  - id: \\"start\\"\\n    type: start\\n    next: " refs "\\n" node* '
        '"# --- END AgenticDSL ---\\n```\\n"',
        'node ::= "  - id: \\"" id "\\"\\n    type: " ('
        + " | ".join(f"t_{n}" for n in content) + ") next?",
        'next ::= "    next: " refs "\\n"',
        'refs ::= "[" ref (", " ref)* "]"',
        'ref ::= "\\"" path "\\""',
        f"path ::= \"/\" {PATH_CHAR_CLASS} {PATH_REF_CHAR_CLASS}*",
        "id ::= [a-z] [a-z0-9_]*",
        'keys ::= "[" key (", " key)* "]"',
        'key ::= "\\"" [A-Za-z_] [A-Za-z0-9_]* "\\""',
        "name ::= [A-Za-z_] [A-Za-z0-9_.\\-]*",
        'entry ::= "      " key ": " str "\\n"',
        'argentry ::= "      \\"" name "\\": " str "\\n"',
        'str ::= "\\"" part* "\\""',
        part,
        f'cond ::= "\\"" ({cond}) "\\""',
    ]
    rules.append("var ::= [A-Za-z_] [A-Za-z0-9_]*")
    for n in content:
        rules.append(f"t_{n} ::= {_BODIES[n]}")
    return "\n".join(rules) + "\n"
