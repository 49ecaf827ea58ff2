"""A real ``agentic-llm serve`` in a child process, for tests that need one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServeProcess:
    """The running server: its address and every stderr line so far."""

    proc: subprocess.Popen[str]
    address: str = ""
    lines: list[str] = field(default_factory=list)

    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30.0) -> bool:
        """Wait until a stderr line holds ``text``; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.lines)):
                return True
            time.sleep(0.05)
        return False


@contextmanager
def serve_process(args: Sequence[str], *, timeout: float = 300.0) -> Iterator[ServeProcess]:
    """``agentic-llm serve ARGS`` from this checkout, until it says where it serves;
    drained with SIGTERM on exit."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentic_llm.cli.main", "serve", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, env=env, cwd=REPO)
    server = ServeProcess(proc)
    assert proc.stderr is not None
    stream = proc.stderr

    def pump() -> None:
        for line in stream:
            server.lines.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.address:
            for line in list(server.lines):
                if "serving on " in line:
                    server.address = line.strip().rsplit(" ", 1)[-1]
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start:\n{server.stderr()}")
            time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(10)
