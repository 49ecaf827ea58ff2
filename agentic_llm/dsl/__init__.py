"""AgenticDSL language core: typed AST, parser, canonical writer, validator.

from agentic_llm.dsl import parse, dumps, validate, check_text
doc = parse(text)                  # raises DSLParseError with .diagnostics
text2 = dumps(doc)                 # canonical form (docs/canonical-form.md)
diags = validate(doc, ValidationPolicy(granted_tools={"web_search"}))
diags = check_text(text)           # parse + validate, never raises on bad input
"""

from __future__ import annotations

from agentic_llm.dsl.check import check_text, is_valid
from agentic_llm.dsl.diagnostics import Diagnostic, DSLParseError, Severity, has_errors
from agentic_llm.dsl.document import (
    META_PATH,
    RESOURCES_PATH,
    Block,
    Document,
    ExecutionBudget,
    Meta,
    NodeBlock,
    Resources,
    Subgraph,
)
from agentic_llm.dsl.dump import dump_block, dumps
from agentic_llm.dsl.limits import DEFAULT_LIMITS, ParseLimits
from agentic_llm.dsl.nodes import (
    NODE_CLASSES,
    NODE_TYPES,
    Assert,
    Assign,
    CodeletCall,
    DslCall,
    End,
    Fork,
    GenerateSubgraph,
    Join,
    LlmCall,
    Node,
    Permissions,
    Start,
    ToolCall,
    UnknownNode,
)
from agentic_llm.dsl.parser import parse
from agentic_llm.dsl.policy import BUILTIN_VARIABLES, RESERVED_TARGETS, ToolSchema, ValidationPolicy
from agentic_llm.dsl.signature import (
    Param,
    Signature,
    SignatureSyntaxError,
    parse_signature,
    signature_from_mapping,
)
from agentic_llm.dsl.templates import TemplateSyntaxError, template_variables
from agentic_llm.dsl.validate import validate

__all__ = [
    "parse",
    "dumps",
    "dump_block",
    "validate",
    "check_text",
    "is_valid",
    "has_errors",
    "Document",
    "Block",
    "Subgraph",
    "NodeBlock",
    "Meta",
    "ExecutionBudget",
    "Resources",
    "META_PATH",
    "RESOURCES_PATH",
    "Node",
    "Start",
    "End",
    "Assign",
    "ToolCall",
    "Assert",
    "Fork",
    "Join",
    "GenerateSubgraph",
    "DslCall",
    "LlmCall",
    "CodeletCall",
    "UnknownNode",
    "NODE_CLASSES",
    "NODE_TYPES",
    "Permissions",
    "Signature",
    "Param",
    "parse_signature",
    "signature_from_mapping",
    "SignatureSyntaxError",
    "template_variables",
    "TemplateSyntaxError",
    "Diagnostic",
    "Severity",
    "DSLParseError",
    "ValidationPolicy",
    "ToolSchema",
    "BUILTIN_VARIABLES",
    "RESERVED_TARGETS",
    "ParseLimits",
    "DEFAULT_LIMITS",
]
