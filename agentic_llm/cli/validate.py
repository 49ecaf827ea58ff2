"""``agentic-llm validate PATH... [--json] [--runtime spec|agenticrt]``: check AgenticDSL documents.

``--runtime spec`` (the default) checks the documents against the spec;
``--runtime agenticrt`` checks what the reference runtime (chisuhua/AgenticDSL) does
with them: its parse and graph build refuse them, crash on them, or silently drop
parts of them (docs/conformance.md).

Exit codes: 0 every document is valid (warnings allowed), 1 at least one is invalid,
2 usage error or an unreadable file. A directory stands for the ``*.md`` files under it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "validate",
        help="check AgenticDSL documents",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="document or directory of *.md")
    parser.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        metavar="N",
        help="largest document accepted (default 1000000)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="treat warnings as errors for the exit code"
    )
    parser.add_argument(
        "--runtime",
        choices=("spec", "agenticrt"),
        default="spec",
        help="what to check against: the spec (default) or the reference runtime",
    )
    parser.set_defaults(func=run)


def _expand(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.md") if q.is_file()))
        else:
            out.append(p)
    return out


def run(args: argparse.Namespace) -> int:
    from agentic_llm.dsl import ParseLimits, Severity, check_text
    from agentic_llm.dsl.conformance import check_runtime

    try:
        limits = ParseLimits(max_input_bytes=args.max_bytes) if args.max_bytes else ParseLimits()
    except ValueError as exc:
        print(f"agentic-llm validate: {exc}", file=sys.stderr)
        return 2
    files = _expand(args.paths)
    if not files:
        print("agentic-llm validate: no documents found", file=sys.stderr)
        return 2
    unreadable = invalid = 0
    for path in files:
        try:
            with path.open("rb") as fh:
                data = fh.read(limits.max_input_bytes + 1)
        except OSError as exc:
            unreadable += 1
            message = f"cannot read {path}: {exc.strerror or exc}"
            if args.json:
                record: dict[str, Any] = {
                    "path": str(path),
                    "valid": False,
                    "diagnostics": [],
                    "error": message,
                }
                print(json.dumps(record))
            print(f"agentic-llm validate: {message}", file=sys.stderr)
            continue
        if len(data) > limits.max_input_bytes or args.runtime == "spec":
            diags = check_text(data, limits=limits)
        else:
            diags = check_runtime(data)
        bad = any(
            d.severity is Severity.ERROR or (args.strict and d.severity is Severity.WARNING)
            for d in diags
        )
        invalid += bad
        if args.json:
            print(
                json.dumps(
                    {
                        "path": str(path),
                        "valid": not bad,
                        "diagnostics": [d.to_dict() for d in diags],
                    },
                    ensure_ascii=False,
                )
            )
        else:
            for d in diags:
                print(d.format(str(path)))
    if not args.json:
        checked = len(files) - unreadable
        print(
            f"{checked} document(s) checked, {invalid} invalid"
            + (f", {unreadable} unreadable" if unreadable else ""),
            file=sys.stderr,
        )
    if unreadable:
        return 2
    return 1 if invalid else 0
