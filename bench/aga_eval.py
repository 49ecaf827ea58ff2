"""CounterFact/zsRE-style evaluation of AGA knowledge injection.

Builds a small random-weight LlamaForCausalLM (or loads ``--model-dir``), registers
``--facts`` synthetic facts "prompt -> target" with the knowledge encoder (all of them
in the store at once), and measures on the same model with the plugin attached vs the
plugin detached:

* efficacy: the target is the top-1 next token after the fact's prompt;
* paraphrase: the same, on rewordings of the prompt: ``light`` substitutes one token
  of the prompt's first half, ``prefix`` replaces the first ``--prefix-len`` tokens;
* locality: on unrelated prompts (random, and "neighbourhood" prompts sharing the
  fact prompt's last three tokens), top-1 agreement with the detached model and the
  mean KL(detached || attached) of the next-token distribution.

Random weights test the mechanics (routing, gating, value fusion), not world
knowledge: a "paraphrase" is a token-level rewording, since a random model has no
semantics. Run: ``python bench/aga_eval.py [--json] [--plot]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import torch

from agentic_llm.aga import AGAConfig, AGAPlugin
from agentic_llm.benchmarks.report import default_plot_path, print_table, progress


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", default=None, help="a transformers checkpoint instead of random weights")
    p.add_argument("--facts", type=int, default=100)
    p.add_argument("--unrelated", type=int, default=200)
    p.add_argument("--prompt-len", type=int, default=10)
    p.add_argument("--prefix-len", type=int, default=3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--bottleneck", type=int, default=64)
    p.add_argument("--min-score", type=float, default=0.85, help="gate2_min_score (cosine floor)")
    p.add_argument("--value-norm", type=float, default=50.0, help="value_norm_target")
    p.add_argument("--encoder-steps", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", nargs="?", const="auto", default=None)
    return p.parse_args(argv)


def _model(a: argparse.Namespace) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    if a.model_dir:
        return AutoModelForCausalLM.from_pretrained(a.model_dir).float().eval()
    torch.manual_seed(a.seed)
    cfg = LlamaConfig(vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=2 * a.hidden,
                      num_hidden_layers=a.layers, num_attention_heads=max(a.hidden // 32, 1),
                      num_key_value_heads=max(a.hidden // 64, 1), max_position_embeddings=512,
                      bos_token_id=None, eos_token_id=None, pad_token_id=None)
    return LlamaForCausalLM(cfg).float().eval()


def _probs(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    a = _args(argv)
    torch.set_num_threads(a.threads)
    model = _model(a)
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(a.seed + 1)

    def rnd(n: int) -> list[int]:
        return torch.randint(0, vocab, (n,), generator=g).tolist()

    facts = [rnd(a.prompt_len) for _ in range(a.facts)]
    targets = [int(t) for t in torch.randint(0, vocab, (a.facts,), generator=g)]

    def light(p: list[int]) -> list[int]:
        q = list(p)
        q[int(torch.randint(0, max(len(p) // 2, 1), (1,), generator=g))] = rnd(1)[0]
        return q

    para_light = [light(f) for f in facts]
    para_prefix = [rnd(a.prefix_len) + f[a.prefix_len:] for f in facts]
    unrelated = [rnd(a.prompt_len) for _ in range(a.unrelated)]
    neighbours = [rnd(a.prompt_len - 3) + facts[i % a.facts][-3:] for i in range(a.unrelated)]
    calib = [rnd(a.prompt_len + 6) for _ in range(64)]

    show = not a.json
    base = {name: [_probs(model, p) for p in progress(ps, desc=f"baseline {name}", enabled=show)]
            for name, ps in (("facts", facts), ("light", para_light), ("prefix", para_prefix),
                             ("unrelated", unrelated), ("neighbours", neighbours))}
    cfg = AGAConfig(hidden_dim=model.config.hidden_size, bottleneck_dim=a.bottleneck,
                    max_slots=max(256, a.facts), gate2_min_score=a.min_score,
                    value_norm_target=a.value_norm, encoder_steps=a.encoder_steps, seed=a.seed)
    plugin = AGAPlugin(cfg).attach(model)
    plugin.calibrate(calib)
    t0 = time.perf_counter()
    margins = []
    for i in progress(range(a.facts), desc="encode+register", enabled=show):
        plugin.register_text(f"fact{i}", facts[i], targets[i])
        margins.append(plugin.store.get(f"fact{i}").metadata["encoder_margin"])  # type: ignore[union-attr]
    encode_s = time.perf_counter() - t0
    edited = {name: [_probs(model, p) for p in progress(ps, desc=f"attached {name}", enabled=show)]
              for name, ps in (("facts", facts), ("light", para_light), ("prefix", para_prefix),
                               ("unrelated", unrelated), ("neighbours", neighbours))}
    diag = plugin.get_diagnostics()
    plugin.detach()

    def hit_rate(name: str) -> float:
        return sum(int(int(p.argmax()) == t) for p, t in zip(edited[name], targets, strict=True)) / a.facts

    def target_prob(name: str) -> float:
        return sum(float(p[t]) for p, t in zip(edited[name], targets, strict=True)) / a.facts

    def locality(name: str) -> tuple[float, float]:
        agree = sum(int(int(b.argmax()) == int(e.argmax())) for b, e in zip(base[name], edited[name], strict=True))
        kl = [float((b * (b.clamp_min(1e-30).log() - e.clamp_min(1e-30).log())).sum())
              for b, e in zip(base[name], edited[name], strict=True)]
        return agree / len(base[name]), sum(kl) / len(kl)

    base_hit = sum(int(int(p.argmax()) == t) for p, t in zip(base["facts"], targets, strict=True)) / a.facts
    loc_u, kl_u = locality("unrelated")
    loc_n, kl_n = locality("neighbours")
    result = {
        "model": a.model_dir or f"random Llama hidden={a.hidden} layers={a.layers} vocab={a.vocab}",
        "facts": a.facts, "unrelated_prompts": a.unrelated,
        "injection_layer": diag["layers"], "gate2_min_score": a.min_score,
        "bottleneck_dim": a.bottleneck,
        "efficacy_top1": hit_rate("facts"), "efficacy_top1_before": base_hit,
        "efficacy_target_prob": target_prob("facts"),
        "paraphrase_light_top1": hit_rate("light"), "paraphrase_prefix_top1": hit_rate("prefix"),
        "locality_unrelated_top1_agreement": loc_u, "locality_unrelated_kl": kl_u,
        "locality_neighbour_top1_agreement": loc_n, "locality_neighbour_kl": kl_n,
        "encoder_margin_median": sorted(margins)[len(margins) // 2],
        "encode_seconds_per_fact": encode_s / a.facts,
        "activation_rate": diag["forward"]["activation_rate"],
    }
    if a.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print_table(["metric", "value"], [(k, v) for k, v in result.items()])
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = ["efficacy", "para light", "para prefix", "locality", "loc. neighbour"]
        vals = [result["efficacy_top1"], result["paraphrase_light_top1"],
                result["paraphrase_prefix_top1"], loc_u, loc_n]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.bar(names, vals, color=["C0", "C1", "C1", "C2", "C2"])
        ax.axhline(0.9, ls="--", c="gray", lw=0.8)
        ax.axhline(0.99, ls=":", c="gray", lw=0.8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"AGA injection eval ({a.facts} facts, min score {a.min_score})")
        path = default_plot_path("aga_eval") if a.plot == "auto" else a.plot
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        if not a.json:
            print(f"plot: {path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    out = run()
    ok = out["efficacy_top1"] >= 0.9 and out["locality_unrelated_top1_agreement"] >= 0.99
    sys.exit(0 if ok and not math.isnan(out["locality_unrelated_kl"]) else 1)
