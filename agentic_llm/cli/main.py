"""Entry point of the ``agentic-llm`` command.

Each sub-command lives in its own module under ``agentic_llm.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking
the parsed namespace and returning the exit code). Heavy imports (torch, xgrammar)
happen inside ``func`` so that ``agentic-llm --help`` stays fast.

Exit codes, the same for every command: 0 success, 1 the command ran and the answer
is "no" (invalid document, rejected text, a request the planner refuses, a failed
request), 2 usage error or unreadable input. Wherever a command reads a file, ``-``
reads standard input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from agentic_llm import __version__
from agentic_llm.errors import AgenticError

# Sub-command modules, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "agentic_llm.cli.validate",
    "agentic_llm.cli.bench",
    "agentic_llm.cli.serve",
    "agentic_llm.cli.demo",
    "agentic_llm.cli.generate",
    "agentic_llm.cli.plan",
    "agentic_llm.cli.grammar",
    "agentic_llm.cli.plugin",
    "agentic_llm.cli.corpus",
)


class PlainHelpParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help drops the docstrings' reST double backticks.

    ``add_subparsers`` makes subcommand parsers of the parser's own class, so every
    command's help is plain too.
    """

    def format_help(self) -> str:
        return super().format_help().replace("``", "")


def build_parser() -> argparse.ArgumentParser:
    parser = PlainHelpParser(
        prog="agentic-llm",
        description="Grammar-constrained serving engine for AgenticDSL agent programs.",
    )
    parser.add_argument("--version", action="version", version=f"agentic-llm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _is_refusal(exc: AgenticError) -> bool:
    from agentic_llm.planner import PlanRefusal

    return isinstance(exc, PlanRefusal)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # `bench NAME` hands everything after NAME to the benchmark's own parser, so
    # unknown options are kept for commands that say they take them.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra_args = extra
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except AgenticError as exc:
        print(f"agentic-llm: {exc}", file=sys.stderr)
        return 1 if _is_refusal(exc) else 2
    except KeyboardInterrupt:
        print("agentic-llm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
