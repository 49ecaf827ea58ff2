"""``agentic-llm plan --request REQ.json [--json] [--library DIR | --profile P]``: print the
ExecutionPlan or the refusal. With a library, unversioned ``/lib`` entries are pinned to
the version the registry gives the request and similar archived solutions are offered.

Exit codes: 0 planned, 1 the planner refused the request, 2 usage error or an
unreadable or malformed request.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("plan", help="plan a generation request", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--request", required=True, metavar="REQ.json",
                   help="request JSON file ('-' reads stdin)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--prompt", action="store_true", help="also print the rendered prompt")
    p.add_argument("--library", metavar="DIR", default=None,
                   help="resolve against this LMDB library (the registry a server writes)")
    p.add_argument("--profile", default=None, help="resolve against this profile's library")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agentic_llm.cli.inputs import read_request
    from agentic_llm.planner import PlanRefusal, plan

    req = read_request(args.request)
    lib = None
    if args.library or args.profile:
        from agentic_llm.cli.corpus import open_cli_library

        lib = open_cli_library(args)
    try:
        p = plan(req, library=lib.resolver if lib is not None else None)
    except PlanRefusal as exc:
        if args.json:
            print(json.dumps({"refused": exc.to_dict()}, indent=2))
        else:
            print(f"refused: {exc}", file=sys.stderr)
        return 1
    finally:
        if lib is not None:
            lib.close()
    if args.json:
        out = p.to_json()
        if args.prompt:
            out["prompt"] = p.render_prompt()
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    for k, v in p.to_json().items():
        print(f"{k}: {json.dumps(v, ensure_ascii=False)}")
    if args.prompt:
        print("--- prompt ---")
        print(p.render_prompt(), end="")
    return 0
