"""The first forward after ``attach`` + ``register`` injects: the hook's one-off set-up
(first calls of its kernels, the projection in the model's dtype) happens in
``attach``, not inside the hook, where it would overrun the fail-open timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A fresh interpreter: in this process other tests have already run these kernels.
SCRIPT = """
import json, torch
from agentic_llm.aga import AGAConfig, AGAPlugin
from tests.aga.conftest import build_llama, logits, random_ids, small_config

torch.set_num_threads(1)
model = build_llama()
ids = torch.tensor(random_ids(1, 8, seed=3))
base = logits(model, ids)
timeout_ms = AGAConfig().max_forward_timeout_ms          # the default fail-open timeout
plugin = AGAPlugin(small_config(gate2_min_score=-1.0, layers=(1, 2),
                                max_forward_timeout_ms=timeout_ms)).attach(model)
g = torch.Generator().manual_seed(0)
plugin.register("fact", torch.randn(16, generator=g), torch.randn(64, generator=g) * 5)
out = logits(model, ids)
diag = plugin.get_diagnostics()
print(json.dumps({"timeout_ms": timeout_ms, "timeouts": diag["forward"]["timeouts"],
                  "errors": diag["forward"]["errors"],
                  "applied": diag["last_step"]["layers_applied"],
                  "changed": not torch.equal(out, base)}))
"""


@pytest.mark.timeout(300)
def test_first_forward_after_register_injects() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["timeout_ms"] == 50.0
    assert result["timeouts"] == 0 and result["errors"] == 0, result
    assert result["applied"] == 2 and result["changed"], result
