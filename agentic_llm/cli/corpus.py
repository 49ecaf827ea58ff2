"""``agentic-llm corpus export --since SPEC --out DIR``: the solved archive as a training corpus.

Reads the library store a profile names (or ``--library DIR``, an LMDB library) and
writes ``DIR/train.jsonl`` in the format ``python -m training.train --corpus DIR``
reads. Exit 0 with at least one example written, 1 when none matched.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["register", "open_cli_library"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("corpus", help="export the solved archive as a training corpus",
                       description=__doc__)
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    e = csub.add_parser("export", help="write train.jsonl from archived solutions",
                        description="Write the solved archive's subgraphs, with their requests, "
                        "as a training corpus (train.jsonl) that training/ reads.")
    e.add_argument("--since", default="all",
                   help="'all', a duration back from now (7d, 12h), an ISO date or Unix seconds")
    e.add_argument("--out", required=True, help="corpus directory to write")
    e.add_argument("--tenant", default=None, help="only this tenant's solutions (default: all)")
    add_library_source(e)
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.set_defaults(func=run_export)


def add_library_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--library", metavar="DIR", default=None, help="an LMDB library directory")
    p.add_argument("--profile", default=None, help="server profile whose library section to read")


def open_cli_library(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The registry named by ``--library`` or ``--profile`` (the default profile's otherwise)."""
    from agentic_llm.config import LibraryConfig, load_config
    from agentic_llm.errors import AgenticError, ErrorCode
    from agentic_llm.library import open_library

    if args.library:
        cfg = LibraryConfig(store="lmdb", path=args.library)
    else:
        cfg = load_config(args.profile).library
    lib = open_library(cfg)
    if lib is None:
        raise AgenticError(ErrorCode.INVALID_CONFIG, "the profile turns the library off (library.store: none)")
    return lib


def run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agentic_llm.library.corpus import export_corpus, parse_since

    since = parse_since(args.since)
    lib = open_cli_library(args)
    try:
        rep = export_corpus(lib, Path(args.out), since=since, tenant=args.tenant)
    finally:
        lib.close()
    if args.json:
        print(json.dumps({"out": str(rep.path), "examples": rep.written, "skipped": rep.skipped,
                          "since": rep.since}))
    else:
        print(f"wrote {rep.written} examples to {rep.path / 'train.jsonl'}"
              + (f" ({rep.skipped} no longer valid, skipped)" if rep.skipped else ""))
    return 0 if rep.written else 1
