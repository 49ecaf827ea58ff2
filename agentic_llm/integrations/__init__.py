"""Integrations with other serving engines (optional; each imports its engine lazily).

``agentic_llm.integrations.sglang``: our graph grammar as an SGLang grammar backend,
and SGLang's offline engine as an executor (docs/sglang.md).
"""
