"""SGLang integration: the ``agentic-dsl`` grammar backend and an SGLang executor.

Nothing here imports SGLang until it is used, so the package imports on machines
without it. A request reaches the backend as::

    sampling_params = {"ebnf": grammar_key(request_json)}   # "#agentic-dsl/v1\\n{...}"

See docs/sglang.md.
"""

from agentic_llm.integrations.sglang.key import (
    BACKEND_NAME,
    KEY_PREFIX,
    SUPPORTED_SGLANG,
    GrammarKey,
    grammar_key,
    handle_key,
    parse_key,
)

__all__ = ["BACKEND_NAME", "KEY_PREFIX", "SUPPORTED_SGLANG", "GrammarKey", "grammar_key",
           "handle_key", "parse_key"]
