"""scripts/gpu-check.sh: refuses a machine without a CUDA device, and every bench
it runs takes the options it passes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"


def test_without_a_cuda_device_it_stops_before_installing(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"  # first on PATH: lists no device
    fake.write_text("#!/bin/sh\nexit 9\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "no CUDA device" in r.stderr
    assert "gpu-check: engine" not in r.stderr  # no bench started


def _help(*cmd: str) -> str:
    r = subprocess.run([sys.executable, *cmd, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_every_bench_it_runs_takes_its_options() -> None:
    text = SCRIPT.read_text()
    cli = re.findall(r"agentic_llm\.cli\.main bench (\w+)([^\n]*)", text)
    assert {name for name, _ in cli} == {"engine", "grammar", "cache"}
    for name, rest in cli:
        usage = _help("-m", "agentic_llm.cli.main", "bench", name)
        for opt in re.findall(r"(--[a-z][a-z-]*)", rest):
            assert opt in usage, f"bench {name} has no {opt}"
    rest = re.search(r"bench/validity\.py([^\n]*)", text)
    assert rest is not None
    usage = _help("bench/validity.py")
    for opt in re.findall(r"(--[a-z][a-z-]*)", rest.group(1)):
        assert opt in usage, f"bench/validity.py has no {opt}"
