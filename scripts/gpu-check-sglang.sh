#!/usr/bin/env bash
# On a machine with a CUDA device: install the `sglang` extra in a separate virtual
# environment, start SGLang's offline engine with the `agentic-dsl` grammar backend
# on a small model, run held-out requests constrained (every document must
# validate against its plan) and unconstrained, and compare throughput.
#   scripts/gpu-check-sglang.sh [MODEL_DIR] [N_REQUESTS]
# Defaults: the shipped agentic-tiny model, 64 requests from bench/validity_requests.jsonl.
# Writes bench/results/sglang-gpu.json. Exit 0 when every constrained document is valid.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-agentic_llm/models/agentic-tiny}
N=${2:-64}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check-sglang: no CUDA device here (nvidia-smi lists none)" >&2
  exit 1
fi
VENV=${SGLANG_VENV:-$HOME/.cache/agentic-llm/sglang-venv}
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$(dirname "$VENV")" && python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # SGLang brings its own CUDA torch; our package goes on top with the test extras.
  "$VENV/bin/pip" install -q -e ".[sglang,dev]"
fi
mkdir -p bench/results
exec "$VENV/bin/python" - "$MODEL" "$N" <<'PY'
import json
import sys
import time
from pathlib import Path

import sglang
import torch

from agentic_llm.dsl import check_text
from agentic_llm.integrations.sglang import BACKEND_NAME, grammar_key
from agentic_llm.planner import GenerateRequest, PlanRefusal, plan

model, n = sys.argv[1], int(sys.argv[2])
reqs, plans = [], []
for line in Path("bench/validity_requests.jsonl").read_text().splitlines():
    try:
        p = plan(GenerateRequest.from_json(line))
    except PlanRefusal:
        continue
    reqs.append(json.loads(line))
    plans.append(p)
    if len(reqs) == n:
        break
prompts = [p.render_prompt() for p in plans]
engine = sglang.Engine(model_path=model, grammar_backend=BACKEND_NAME)


def run(constrained: bool) -> tuple[list[dict], float]:
    params = [{"max_new_tokens": 768, "temperature": 0.0,
               **({"ebnf": grammar_key(r)} if constrained else {})} for r in reqs]
    engine.generate(prompt=prompts[:2], sampling_params=params[:2])  # warm-up
    t0 = time.perf_counter()
    outs = engine.generate(prompt=prompts, sampling_params=params)
    return outs, time.perf_counter() - t0


report = {"model": model, "requests": len(reqs), "device": torch.cuda.get_device_name(0),
          "sglang": sglang.__version__}
for constrained in (True, False):
    outs, secs = run(constrained)
    tokens = sum(o["meta_info"]["completion_tokens"] for o in outs)
    valid = 0
    failures = []
    for o, p in zip(outs, plans, strict=True):
        errs = [d for d in check_text(o["text"], p.validation_policy()) if d.severity == "error"]
        valid += not errs
        if errs and len(failures) < 5:
            failures.append({"target": p.target_path, "errors": [f"{d.code}: {d.message}" for d in errs[:3]]})
    report["constrained" if constrained else "unconstrained"] = {
        "valid": valid, "seconds": round(secs, 3), "completion_tokens": tokens,
        "tokens_per_s": round(tokens / secs, 1), "failures": failures}
engine.shutdown()
c, u = report["constrained"], report["unconstrained"]
report["throughput_ratio_constrained_over_unconstrained"] = round(c["tokens_per_s"] / u["tokens_per_s"], 3)
Path("bench/results/sglang-gpu.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps(report, indent=2))
sys.exit(0 if c["valid"] == len(reqs) else 1)
PY
