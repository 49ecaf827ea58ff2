"""Train the shipped model: a small Llama on (prompt -> canonical subgraph) pairs.

The loss covers the answer tokens and the closing ``<|endoftext|>`` only; the prompt is
context. The LM head runs only at answer positions, which on this corpus skips
most of its cost. Seeds, data order and the step count are fixed, so the same
command on the same corpus rebuilds the same checkpoint (up to float rounding
across CPU types).

    python -m training.train --corpus /tmp/agentic-corpus \\
        --out agentic_llm/models/agentic-tiny --steps 480
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from training.tokenizer import BOS, EOS, PAD

__all__ = ["ModelShape", "TrainConfig", "load_examples", "build_model", "train", "main"]


@dataclass(frozen=True)
class ModelShape:
    """Architecture of the shipped model (a Llama)."""

    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 384
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings."""

    steps: int = 480
    batch_tokens: int = 2048
    lr: float = 3e-3
    warmup: int = 30
    weight_decay: float = 0.01
    seed: int = 0
    # One thread: on a shared, oversubscribed CPU a second thread mostly waits at
    # barriers (measured 3x slower per step than one thread under load).
    threads: int = 1
    log_every: int = 20


def load_examples(corpus: Path, tok: Tokenizer, max_len: int) -> list[tuple[list[int], int]]:
    """Token ids of every example as ``(ids, answer_start)``; longer than ``max_len`` is dropped."""
    eos = tok.token_to_id(EOS)
    out = []
    with (corpus / "train.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            prompt = tok.encode(rec["prompt"]).ids
            answer = tok.encode(rec["answer"], add_special_tokens=False).ids + [eos]
            ids = prompt + answer
            if len(ids) <= max_len:
                out.append((ids, len(prompt)))
    return out


def build_model(tok: Tokenizer, shape: ModelShape, seed: int):  # type: ignore[no-untyped-def]
    """A freshly initialised ``LlamaForCausalLM`` for ``tok``'s vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        rope_theta=shape.rope_theta,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
        pad_token_id=tok.token_to_id(PAD),
    )
    return LlamaForCausalLM(config)


def _batches(examples: list[tuple[list[int], int]], batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar length, each at most ``batch_tokens`` padded tokens."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i][0]), i))
    batches, cur, longest = [], [], 0
    for i in order:
        n = len(examples[i][0])
        if cur and max(longest, n) * (len(cur) + 1) > batch_tokens:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def _collate(examples: list[tuple[list[int], int]], idx: list[int], pad: int):  # type: ignore[no-untyped-def]
    width = max(len(examples[i][0]) for i in idx)
    ids = torch.full((len(idx), width), pad, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    target = torch.full((len(idx), width), -100, dtype=torch.long)
    for row, i in enumerate(idx):
        seq, start = examples[i]
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
        # Position t predicts token t+1: answer tokens are predicted from start-1 on.
        target[row, start - 1 : len(seq) - 1] = torch.tensor(seq[start:])
    return ids, mask, target


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model, examples: list[tuple[list[int], int]], pad: int, cfg: TrainConfig, log) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Run ``cfg.steps`` AdamW steps; returns timing and loss figures."""
    torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)
    model.train()
    batches: list[list[int]] = []
    window: list[float] = []
    t0 = time.perf_counter()
    tokens_seen = 0
    bar = tqdm(range(cfg.steps), desc="train", file=sys.stderr, dynamic_ncols=True)
    for step in bar:
        if not batches:
            batches = _batches(examples, cfg.batch_tokens, rng)
        ids, mask, target = _collate(examples, batches.pop(), pad)
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg)
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        sel = target != -100
        logits = model.lm_head(hidden[sel])
        loss = torch.nn.functional.cross_entropy(logits.float(), target[sel])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens_seen += int(mask.sum())
        window.append(float(loss.detach()))
        window = window[-cfg.log_every:]
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            avg = sum(window) / len(window)
            bar.set_postfix(loss=f"{avg:.4f}")
            log(f"step {step + 1}/{cfg.steps} loss {avg:.4f} lr {_lr(step, cfg):.2e} "
                f"elapsed {time.perf_counter() - t0:.0f}s tokens {tokens_seen}")
    return {"final_loss": sum(window) / len(window), "train_seconds": time.perf_counter() - t0,
            "tokens_seen": float(tokens_seen)}


def save(model, tok_path: Path, out: Path, stats: dict[str, float], dtype: torch.dtype) -> None:  # type: ignore[no-untyped-def]
    """``save_pretrained`` in ``dtype`` plus the tokenizer, generation config and stats."""
    from transformers import GenerationConfig

    out.mkdir(parents=True, exist_ok=True)
    model = model.to(dtype)
    model.config.dtype = dtype
    model.generation_config = GenerationConfig(
        bos_token_id=model.config.bos_token_id, eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id, do_sample=False, max_new_tokens=1024)
    model.save_pretrained(out, safe_serialization=True)
    if tok_path.resolve() != (out / "tokenizer.json").resolve():
        (out / "tokenizer.json").write_bytes(tok_path.read_bytes())
    (out / "training_stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Command line: train on ``--corpus`` with the tokenizer in ``--out`` and save there."""
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory holding tokenizer.json")
    p.add_argument("--tokenizer", type=Path, default=None, help="default: OUT/tokenizer.json")
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--batch-tokens", type=int, default=TrainConfig.batch_tokens)
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--seed", type=int, default=TrainConfig.seed)
    p.add_argument("--threads", type=int, default=TrainConfig.threads)
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    args = p.parse_args(argv)
    tok_path = args.tokenizer or args.out / "tokenizer.json"
    tok = Tokenizer.from_file(str(tok_path))
    shape = ModelShape()
    cfg = TrainConfig(steps=args.steps, batch_tokens=args.batch_tokens, lr=args.lr,
                      seed=args.seed, threads=args.threads)

    def log(msg: str) -> None:
        print(msg, flush=True)

    examples = load_examples(args.corpus, tok, shape.max_position_embeddings)
    log(f"{len(examples)} examples, {sum(len(e[0]) for e in examples)} tokens")
    model = build_model(tok, shape, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{n_params} parameters")
    stats = train(model, examples, tok.token_to_id(PAD), cfg, log)
    stats.update({"parameters": float(n_params), "examples": float(len(examples)),
                  "steps": float(cfg.steps)})
    save(model, tok_path, args.out, stats, getattr(torch, args.dtype))
    log(f"saved to {args.out}: final loss {stats['final_loss']:.4f} in {stats['train_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
