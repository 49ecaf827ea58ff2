"""Fine-tune an instruct checkpoint for AgenticDSL with a LoRA adapter, on CPU.

The base weights stay frozen; every attention and MLP projection of every layer
gets a rank-``r`` update ``W + (alpha / r) * B @ A`` (``B`` starts at zero, so step 0
is the base model). The loss covers the answer tokens and the end-of-turn token only.

Every prompt starts with the same system turn (the planner's stable rules), so each
step runs that prefix once, without gradients, under the current adapter, and
continues every example of the batch from its keys and values: the prefix costs one
forward per step instead of a forward and backward per example. Its own keys and
values get no gradient; the rest of the prompt and the answer do.

Reproducible: the data order is a seeded permutation and each step takes the next
``batch`` examples of it, so a run interrupted at any point resumes from its last
checkpoint (``--out``/checkpoint.pt, every ``--save-every`` steps) to the same result.

    python -m training.chat_corpus --model M.gguf --out /tmp/chat-corpus
    python -m training.lora --model M.gguf --corpus /tmp/chat-corpus/train.jsonl \\
        --out agentic_llm/models/smollm2-agentic-lora --steps 300
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["LoraConfig", "LoraLinear", "Example", "attach", "adapter_state", "batch_loss", "tokenize", "train",
           "main", "TARGETS"]

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraConfig:
    """What the adapter is and how it is trained."""

    rank: int = 16
    alpha: float = 32.0
    steps: int = 250
    batch: int = 4
    lr: float = 1e-3
    warmup: int = 15
    seed: int = 0
    threads: int = 2
    max_answer_tokens: int = 600
    init: str = ""  # an adapter directory to start from (continued training), else B = 0

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


class LoraLinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, scale: float, gen: torch.Generator) -> None:
        super().__init__()
        self.base = base
        self.scale = scale
        bound = 1.0 / math.sqrt(base.in_features)
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features).uniform_(-bound, bound, generator=gen))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.t()) @ self.lora_b.t() * self.scale


def attach(model: nn.Module, cfg: LoraConfig) -> dict[str, LoraLinear]:
    """Wrap every target projection of ``model`` (a transformers Llama); returns them
    by the base weight's checkpoint name (``model.layers.N.self_attn.q_proj``)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped: dict[str, LoraLinear] = {}
    for i, layer in enumerate(model.model.layers):
        for part_name in ("self_attn", "mlp"):
            part = getattr(layer, part_name)
            for name in TARGETS:
                base = getattr(part, name, None)
                if isinstance(base, nn.Linear):
                    lora = LoraLinear(base, cfg.rank, cfg.scale, gen)
                    setattr(part, name, lora)
                    wrapped[f"model.layers.{i}.{part_name}.{name}"] = lora
    return wrapped


def adapter_state(wrapped: dict[str, LoraLinear], dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """The adapter's tensors under the names ``engine.lora`` reads."""
    out: dict[str, torch.Tensor] = {}
    for name, m in wrapped.items():
        out[f"{name}.lora_a"] = m.lora_a.detach().to(dtype).contiguous()
        out[f"{name}.lora_b"] = m.lora_b.detach().to(dtype).contiguous()
    return out


def hf_llama(loaded_cfg: Any, state: dict[str, torch.Tensor]) -> nn.Module:
    """A transformers ``LlamaForCausalLM`` holding ``state`` (for autograd training)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    c = loaded_cfg
    hc = LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                     num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                     num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim,
                     max_position_embeddings=c.max_position_embeddings, rms_norm_eps=c.rms_norm_eps,
                     rope_theta=c.rope_theta, tie_word_embeddings=c.tie_word_embeddings)
    model = LlamaForCausalLM(hc)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not (c.tie_word_embeddings and m == "lm_head.weight")]:
        raise ValueError(f"checkpoint does not fit a Llama: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if c.tie_word_embeddings:
        model.tie_weights()
    return model


@dataclass
class Example:
    """One training sequence after the shared prefix."""

    suffix: list[int]  # prompt tokens after the shared prefix, then the answer
    answer_start: int  # index in ``suffix`` of the first answer token


def tokenize(records: list[dict[str, Any]], tokenizer: Any, prefix_text: str, eos: int,
             max_answer: int) -> tuple[list[int], list[Example]]:
    """The shared prefix's tokens and every example's remaining tokens.

    Prompts are encoded as the engine encodes them; the answer is the token sequence
    the grammar writes followed by the end-of-turn token.
    """
    prefix = tokenizer.encode(prefix_text).ids
    out = []
    for r in records:
        prompt = tokenizer.encode(r["prompt"]).ids
        if prompt[:len(prefix)] != prefix:
            raise ValueError("a prompt does not start with the shared system turn's tokens")
        answer = tokenizer.encode(r["answer"], add_special_tokens=False).ids[:max_answer] + [eos]
        rest = prompt[len(prefix):]
        out.append(Example(rest + answer, len(rest)))
    return prefix, out


def _lr(step: int, cfg: LoraConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def batch_loss(model: nn.Module, prefix: list[int], batch: list[Example]) -> torch.Tensor:
    """Mean cross-entropy of the batch's answer tokens, each sequence continuing the
    ``prefix`` (run once, without gradients, and repeated over the batch)."""
    with torch.no_grad():
        cache = model.model(input_ids=torch.tensor([prefix]), use_cache=True).past_key_values
    cache.batch_repeat_interleave(len(batch))
    width = max(len(e.suffix) for e in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)
    for i, e in enumerate(batch):
        ids[i, :len(e.suffix)] = torch.tensor(e.suffix)
    hidden = model.model(input_ids=ids, past_key_values=cache, use_cache=True).last_hidden_state
    # position j predicts token j + 1: answer tokens are predicted from answer_start - 1 on
    rows, cols, targets = [], [], []
    for i, e in enumerate(batch):
        for j in range(e.answer_start - 1, len(e.suffix) - 1):
            rows.append(i)
            cols.append(j)
            targets.append(e.suffix[j + 1])
    logits = model.lm_head(hidden[torch.tensor(rows), torch.tensor(cols)])
    return nn.functional.cross_entropy(logits.float(), torch.tensor(targets))


def train(model_path: str, corpus: Path, out: Path, cfg: LoraConfig, *, save_every: int = 25,
          progress: bool = True) -> dict[str, Any]:
    """Train (or resume) and write ``adapter.safetensors``, ``adapter_config.json``,
    ``train_log.json`` and ``loss.png`` under ``out``; returns the run's summary."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    from agentic_llm.benchmarks.report import cpu_model
    from agentic_llm.engine.gguf.loader import read_state_dict
    from agentic_llm.engine.gguf.metadata import find_gguf, model_config, open_gguf
    from agentic_llm.engine.loader import load_model
    from agentic_llm.engine.lora import base_fingerprint
    from agentic_llm.planner.chat import ChatTemplate

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    file = find_gguf(model_path)
    if file is None:
        raise ValueError(f"{model_path} is not a GGUF checkpoint")
    loaded = load_model(file)
    chat = ChatTemplate.from_loaded(loaded)
    if chat is None:
        raise ValueError(f"{file} ships no chat template")
    g = open_gguf(file)
    model = hf_llama(model_config(g), read_state_dict(g))
    del loaded.model
    wrapped = attach(model, cfg)
    if cfg.init:
        _load_init(wrapped, Path(cfg.init))
    params = [p for m in wrapped.values() for p in (m.lora_a, m.lora_b)]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)

    records = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    eos = loaded.eos_token_ids[0]
    prefix, examples = tokenize(records, loaded.tokenizer, chat.stable_prefix, eos, cfg.max_answer_tokens)
    order: list[int] = []
    rng = random.Random(cfg.seed)
    while len(order) < cfg.steps * cfg.batch:
        perm = list(range(len(examples)))
        rng.shuffle(perm)
        order += perm

    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    log: list[dict[str, float]] = []
    start, spent = 0, 0.0
    if ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False)
        # the thread count is the machine's, not the run's: a run may resume with another
        same = {k: v for k, v in saved["config"].items() if k != "threads"} == \
            {k: v for k, v in asdict(cfg).items() if k != "threads"}
        if not same or saved["corpus_examples"] != len(examples):
            raise ValueError(f"{ckpt} is from another configuration or corpus; remove it to start over")
        for name, m in wrapped.items():
            m.lora_a.data.copy_(saved["lora"][f"{name}.lora_a"])
            m.lora_b.data.copy_(saved["lora"][f"{name}.lora_b"])
        opt.load_state_dict(saved["optimizer"])
        start, spent, log = saved["step"], saved["seconds"], saved["log"]

    model.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress,
               desc="lora", unit="step")
    for step in bar:
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        batch = [examples[i] for i in order[step * cfg.batch:(step + 1) * cfg.batch]]
        loss = batch_loss(model, prefix, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        spent += time.perf_counter() - t0
        log.append({"step": step + 1, "loss": float(loss.detach()), "seconds": round(spent, 1)})
        bar.set_postfix(loss=f"{log[-1]['loss']:.3f}")
        if (step + 1) % save_every == 0 or step + 1 == cfg.steps:
            torch.save({"config": asdict(cfg), "corpus_examples": len(examples), "step": step + 1,
                        "seconds": spent, "log": log, "optimizer": opt.state_dict(),
                        "lora": adapter_state(wrapped, torch.float32)}, ckpt)
    bar.close()

    save_file(adapter_state(wrapped), str(out / "adapter.safetensors"))
    summary = {
        "format": "agentic-llm-lora/1", "rank": cfg.rank, "alpha": cfg.alpha, "targets": list(TARGETS),
        "base": base_fingerprint(file), "base_file": file.name, "training": asdict(cfg),
        "corpus": {"examples": len(examples), "path_name": corpus.name,
                   "sources": dict(Counter(r["source"] for r in records))},
        "train_seconds": round(spent, 1), "final_loss_mean_last10": _mean([e["loss"] for e in log[-10:]]),
        "cpu": cpu_model(), "torch": torch.__version__,
    }
    (out / "adapter_config.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "train_log.json").write_text(json.dumps(log) + "\n", encoding="utf-8")
    _plot(log, out / "loss.png")
    return summary


def _load_init(wrapped: dict[str, LoraLinear], adapter_dir: Path) -> None:
    """Start from the tensors of an earlier adapter of the same shape (every target of
    every layer); a missing or misshapen tensor is an error, not a silent fresh start."""
    from safetensors.torch import load_file

    state = load_file(str(adapter_dir / "adapter.safetensors"))
    for name, m in wrapped.items():
        for part, param in (("lora_a", m.lora_a), ("lora_b", m.lora_b)):
            t = state.get(f"{name}.{part}")
            if t is None or t.shape != param.shape:
                raise ValueError(f"{adapter_dir} has no {name}.{part} of shape {tuple(param.shape)}")
            param.data.copy_(t.float())


def _mean(xs: list[float]) -> float:
    return round(sum(xs) / len(xs), 4) if xs else float("nan")


def _plot(log: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["step"] for e in log]
    losses = [e["loss"] for e in log]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(steps, losses, lw=0.8, alpha=0.5, label="batch loss")
    k = 10
    if len(losses) >= k:
        smooth = [sum(losses[i - k + 1:i + 1]) / k for i in range(k - 1, len(losses))]
        ax.plot(steps[k - 1:], smooth, lw=1.8, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (answer tokens)")
    ax.set_title("LoRA fine-tune on AgenticDSL plans")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m training.lora", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="base checkpoint (GGUF file or a directory holding one)")
    p.add_argument("--corpus", type=Path, required=True, help="train.jsonl from training.chat_corpus")
    p.add_argument("--out", type=Path, required=True, help="adapter directory (also holds the checkpoint)")
    d = LoraConfig()
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--rank", type=int, default=d.rank)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--init", default="", help="adapter directory to continue training from (default: a fresh adapter)")
    p.add_argument("--save-every", type=int, default=25)
    args = p.parse_args(argv)
    cfg = LoraConfig(rank=args.rank, alpha=2.0 * args.rank, steps=args.steps, batch=args.batch, lr=args.lr,
                     seed=args.seed, threads=args.threads,
                     init=str(Path(args.init).resolve()) if args.init else "")
    summary = train(args.model, args.corpus, args.out, cfg, save_every=args.save_every)
    print(json.dumps({k: summary[k] for k in ("train_seconds", "final_loss_mean_last10", "corpus")}),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
