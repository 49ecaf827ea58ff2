"""``agentic-llm serve --backend sglang``: checks, then SGLang behind our front.

Usage errors exit 2; a machine where SGLang cannot run is refused with exit 1 and
an ERR_* message, before anything is started.
"""

from __future__ import annotations

import argparse
import sys

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.integrations.sglang.executor import SGLangOptions, check_runtime

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    try:
        options = SGLangOptions(model_path=args.model_path or "", tp=args.tp)
    except ValueError as exc:
        print(f"agentic-llm serve: {exc}", file=sys.stderr)
        return 2
    try:
        check_runtime(options)
        # The executor is ready (SGLangExecutor); the gRPC front drives it once the
        # serving pipeline takes an executor in place of the native engine loop.
        raise AgenticError(ErrorCode.UNSUPPORTED_CAPABILITY,
                           "serving the gRPC front over SGLang is not available yet; use the "
                           "agentic-dsl grammar backend with SGLang's own server (docs/sglang.md)")
    except AgenticError as exc:
        print(f"agentic-llm serve: {exc}", file=sys.stderr)
        return 1
