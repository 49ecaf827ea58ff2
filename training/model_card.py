"""Write ``MODEL_CARD.md`` for a trained checkpoint from its own files and measurements.

Reads ``config.json``, ``model.safetensors``, ``tokenizer.json`` and
``training_stats.json`` from the checkpoint and the JSON written by
``python bench/validity.py --out FILE``, so every figure in the card is measured.

    python -m training.model_card --model agentic_llm/models/agentic-tiny \\
        --validity bench/results/validity.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

__all__ = ["render_card", "main"]


def _params(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        for name in f.keys():  # noqa: SIM118 - safe_open has no __iter__
            total += _prod(f.get_slice(name).get_shape())
    return total


def _prod(shape: list[int]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _mode(validity: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in validity["modes"] if m["mode"] == name)


def _failures(c: dict[str, Any]) -> str:
    if not c["failures"]:
        return ""
    lines = ["", "Constrained outputs that failed validation (each is a defect outside the model,",
             "in the grammar layer that should have masked it):", ""]
    for f in c["failures"]:
        lines.append(f"- request #{f['index']} ({f['target_path']}): {'; '.join(f['diagnostics']) or f['error']}")
    return "\n".join(lines) + "\n"


def render_card(model_dir: Path, validity: dict[str, Any], *, hardware: str) -> str:
    """The card's Markdown text."""
    cfg = json.loads((model_dir / "config.json").read_text())
    stats = json.loads((model_dir / "training_stats.json").read_text())
    size = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file() and p.name != "MODEL_CARD.md")
    c, u = _mode(validity, "constrained"), _mode(validity, "unconstrained")
    errs = ", ".join(f"{k} ×{v}" for k, v in u["error_codes"].items()) or "none"
    cerrs = ", ".join(f"{k} ×{v}" for k, v in c["error_codes"].items()) or "none"
    minutes = stats["train_seconds"] / 60
    return f"""# agentic-tiny

A small Llama that writes AgenticDSL subgraphs for `generate_subgraph` requests. It
is the model `agentic-llm generate` and the server use when no other checkpoint is
configured. It is a format model trained on a synthetic corpus, not a general
language model: grammar-constrained decoding guarantees validity, the model
supplies the choices (which tools, which arguments, how the steps link).

## Architecture

| | |
| --- | --- |
| family | Llama (`LlamaForCausalLM`, HF format) |
| parameters | {_params(model_dir):,} |
| layers | {cfg['num_hidden_layers']} |
| hidden size | {cfg['hidden_size']} |
| attention heads / KV heads | {cfg['num_attention_heads']} / {cfg['num_key_value_heads']} (head dim {cfg.get('head_dim', cfg['hidden_size'] // cfg['num_attention_heads'])}) |
| MLP intermediate size | {cfg['intermediate_size']} |
| vocabulary | {cfg['vocab_size']} (byte-level BPE) |
| max positions | {cfg['max_position_embeddings']} (RoPE, theta {cfg.get('rope_parameters', {}).get('rope_theta', cfg.get('rope_theta'))}) |
| weights | {cfg.get('dtype', cfg.get('torch_dtype'))} safetensors, untied LM head |
| checkpoint size | {size / 1e6:.1f} MB (all files) |

## Corpus

{int(stats['examples']):,} synthetic (request, subgraph) pairs from `training/corpus.py`.
Each request is drawn by `training/scenario.py`: a goal made of phrases that each
call for one of 32 tools (web search, summarize, translate, email, hotels, SQL, ...)
or a model call, 0 to 12 offered tools with argument schemas (the rest are
distractors), 0 to 3 library subgraphs with signatures, context variables with
values, permissions on some requests, a 3 to 12 node budget and a `/dynamic/...`
target. The answer is built as `agentic_llm.dsl` AST nodes and written with
`dsl.dumps` (canonical form): tool calls with exactly the arguments the goal names
(`{{{{ var }}}}` for context variables, literals, or the previous step's output),
`llm_call` steps, fork/join fan-outs, `assert` checks, `generate_subgraph`
follow-ups, `assign` collection and hand-overs to a library path. Every answer
validates with zero errors against `plan(request).validation_policy()`, and every
prompt is `plan(request).render_prompt()`, the text the server sends.

## Tokenizer

Byte-level BPE trained with `tokenizers` on the corpus (`training/tokenizer.py`):
{cfg['vocab_size']} tokens including `<|pad|>`, `<|bos|>` (prepended to every prompt) and
`<|endoftext|>` (ends every answer). Pre-tokenization cuts after `": "`, `': "'`,
`': ["'`, quotes and newlines, so the canonical form's fixed pieces
(`'    next: ["'`) are single tokens that end where the grammar hands the choice
back to the model, and jump-forward text tokenizes as in training.

## Training

| | |
| --- | --- |
| steps | {int(stats['steps'])} AdamW steps (lr 3e-3, warmup 30, cosine to 10%, batches of up to 2048 padded tokens) |
| tokens processed | {int(stats['tokens_seen']):,} |
| loss | cross-entropy on answer tokens and the closing `<|endoftext|>` only |
| final loss | {stats['final_loss']:.3f} (mean of the last 20 steps) |
| wall time | {minutes:.1f} minutes |
| hardware | {hardware} |

Rebuild (deterministic seeds and data order):

    python -m training.corpus --out /tmp/agentic-corpus --train 8000 --heldout 200
    python -m training.tokenizer --corpus /tmp/agentic-corpus --out agentic_llm/models/agentic-tiny
    python -m training.train --corpus /tmp/agentic-corpus --out agentic_llm/models/agentic-tiny --steps {int(stats['steps'])}

## Validity

{c['requests']} held-out requests (`bench/validity_requests.jsonl`: another seed of the
generator, no prompt shared with the training set), greedy decoding, each output
validated against its own plan (`python bench/validity.py`):

| decoding | valid | rate | failures by code |
| --- | --- | --- | --- |
| grammar-constrained | {c['valid']}/{c['requests']} | {100 * c['valid_rate']:.1f}% | {cerrs} |
| unconstrained | {u['valid']}/{u['requests']} | {100 * u['valid_rate']:.1f}% | {errs} |

Constrained decoding produced {c['output_tokens_total']:,} output tokens, {c['jump_forward_tokens']:,} of
them ({100 * c['jump_forward_tokens'] / max(1, c['output_tokens_total']):.0f}%) appended by jump-forward without a decode step.
{_failures(c)}
## Limits

- Trained for under half an hour on one shared CPU core: it has learned the shape of
  the language far better than the content. Unconstrained, it often misnames the
  target path or repeats ids; constrained, the grammar keeps it valid but the
  choice of tools and arguments is only roughly what the goal asks.
- It knows the tools and phrasings of its corpus; new tool names are handled by the
  grammar (only granted tools can be written) rather than by understanding.
- It was trained on the exact prompt text of `agentic_llm/planner/prompt.py` and the
  canonical form of `docs/canonical-form.md`; retrain it when either changes.
"""


def main(argv: list[str] | None = None) -> int:
    """Command line: write ``MODEL_CARD.md`` into ``--model``."""
    p = argparse.ArgumentParser(prog="python -m training.model_card", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--validity", type=Path, required=True, help="JSON from bench/validity.py --out")
    p.add_argument("--hardware", default=f"CPU ({platform.machine()}), 1 torch thread on a shared 2-core VM")
    args = p.parse_args(argv)
    validity = json.loads(args.validity.read_text())
    (args.model / "MODEL_CARD.md").write_text(render_card(args.model, validity, hardware=args.hardware))
    print(f"wrote {args.model / 'MODEL_CARD.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
