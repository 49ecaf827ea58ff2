"""The ```python and ```bash blocks of README.md and docs/*.md run as written.

Each page's bash blocks run in order with ``agentic-llm`` meaning this checkout's
CLI; a block that starts ``agentic-llm serve`` starts a real server on loopback (on a
free port: the documented address in the page's Python blocks is replaced by the
one the server printed) that lives until the page's checks end. The page's Python
blocks then run in order, in one fresh interpreter, sharing their names the way a
reader follows the page. A block right after a ``<!-- no-run: reason -->`` line is
not run; such marks are for commands this suite cannot run (installs, the suite
itself, benchmarks that take minutes).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.serve_process import serve_process

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NO_RUN = "<!-- no-run"
DOCUMENTED_ADDRESS = "127.0.0.1:50051"
_FENCE = re.compile(r"^([ \t]*)```(python|bash)[ \t]*\n(.*?)^\1```[ \t]*$", re.S | re.M)

RUNNER = """
import json, sys
blocks = json.load(sys.stdin)
names = {"__name__": "__main__"}
for where, code in blocks:
    print(f"--- {where}", flush=True)
    exec(compile(code, where, "exec"), names)
"""


@dataclass(frozen=True)
class Block:
    where: str  # page:line of the opening fence
    lang: str
    code: str


def page_blocks(page: Path) -> list[Block]:
    """The page's runnable blocks, in order."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if before.strip().startswith(NO_RUN):
            continue
        line = text.count("\n", 0, m.start()) + 1
        code = textwrap.dedent(m.group(3))  # a block inside a list item is indented
        out.append(Block(f"{page.relative_to(REPO)}:{line}", m.group(2), code))
    return out


def _serve_args(code: str) -> list[str] | None:
    """The arguments of a block that is one ``agentic-llm serve`` command, else None."""
    lines = [ln.split("#", 1)[0].strip() for ln in code.strip().splitlines()]
    words = shlex.split(" ".join(ln for ln in lines if ln))
    if words[:2] != ["agentic-llm", "serve"]:
        return None
    args = words[2:]
    if "--listen" in args:
        args[args.index("--listen") + 1] = "127.0.0.1:0"
    return args


def _env(tmp_path: Path) -> dict[str, str]:
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    cli = shim / "agentic-llm"
    cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m agentic_llm.cli.main "$@"\n')
    cli.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return dict(os.environ, PATH=f"{shim}{os.pathsep}{os.environ['PATH']}", HOME=str(home),
                PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")


def test_pages_have_runnable_blocks() -> None:
    runnable = {p.name: len(page_blocks(p)) for p in PAGES}
    assert runnable["README.md"] >= 3, runnable
    assert sum(runnable.values()) >= 12, runnable


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("page", [p for p in PAGES if page_blocks(p)], ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    python: list[Block] = []
    with ExitStack() as servers:
        address = ""
        for block in page_blocks(page):
            if block.lang == "python":
                python.append(block)
                continue
            args = _serve_args(block.code)
            if args is not None:
                address = servers.enter_context(serve_process(args)).address
                continue
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=REPO,
                                  env=env, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, (
                f"{block.where} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        if python:
            blocks = [(b.where, b.code.replace(DOCUMENTED_ADDRESS, address or DOCUMENTED_ADDRESS))
                      for b in python]
            proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(blocks),
                                  cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
