"""Plan -> grammar -> token masks: xgrammar for syntax, a graph layer for the rest.

    from agentic_llm.grammar import GrammarCompiler, TokenizerInfo
    compiler = GrammarCompiler(TokenizerInfo.from_qwen())
    matcher = compiler.matcher_for(plan)     # engine.constraints.TokenMatcher
"""

from agentic_llm.grammar.compiler import STANDARD_SHAPES, GrammarCompiler
from agentic_llm.grammar.ebnf import GrammarSpec, build_ebnf
from agentic_llm.grammar.graph import GraphPlan
from agentic_llm.grammar.matcher import DSLMatcher
from agentic_llm.grammar.tokenizer import TokenizerInfo
from agentic_llm.grammar.vocab import VocabIndex

__all__ = ["GrammarCompiler", "TokenizerInfo", "DSLMatcher", "GrammarSpec", "GraphPlan",
           "VocabIndex", "build_ebnf", "STANDARD_SHAPES"]
