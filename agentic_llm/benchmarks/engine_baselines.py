"""The other systems ``bench engine`` runs on the same weights: transformers and vLLM.

Neither loads the checkpoint itself. transformers gets a model built from the
architecture and the (dequantized, cast) state dict our loader produced, so a GGUF
file and a directory are compared alike; vLLM gets a Hugging Face directory written
from that same model into a temporary folder. Prompts go in as token ids, decoding is
greedy with every request producing exactly the requested number of tokens.

vLLM is optional and never a dependency: :func:`vllm_or_note` imports it or says why
not (see docs/benchmarks.md for installing its CPU build).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from agentic_llm.engine.config import ModelConfig
    from agentic_llm.engine.loader import LoadedModel

__all__ = ["HFRunner", "VllmRunner", "agreement", "fp32_reference", "hf_config_dict", "hf_model_from_loaded",
           "vllm_or_note", "write_hf_checkpoint", "AGREE_TOKENS"]

#: greedy tokens per request compared between systems
AGREE_TOKENS = 32
_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}


def hf_config_dict(cfg: ModelConfig) -> dict[str, Any]:
    """``config.json`` of a Hugging Face checkpoint with the architecture ``cfg``."""
    rope: dict[str, Any] = {"rope_type": cfg.rope_scaling.rope_type, "rope_theta": cfg.rope_theta}
    if cfg.rope_scaling.rope_type != "default":
        rs = cfg.rope_scaling
        rope.update(factor=rs.factor, low_freq_factor=rs.low_freq_factor, high_freq_factor=rs.high_freq_factor,
                    original_max_position_embeddings=rs.original_max_position_embeddings)
    eos = list(cfg.eos_token_ids)
    return {
        "architectures": [_ARCHITECTURES[cfg.model_type]],
        "model_type": cfg.model_type,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        # both layouts: transformers 4 reads rope_scaling, 5 reads rope_parameters
        "rope_scaling": rope if cfg.rope_scaling.rope_type != "default" else None,
        "rope_parameters": rope,
        "attention_bias": cfg.attention_bias,
        "mlp_bias": cfg.mlp_bias,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "hidden_act": "silu",
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": eos[0] if len(eos) == 1 else (eos or None),
        "use_cache": True,
    }


def hf_model_from_loaded(loaded: LoadedModel, dtype: torch.dtype = torch.float32) -> Any:
    """A transformers causal LM holding copies of ``loaded``'s weights (their usual
    ``[out, in]`` layout), in ``dtype``, in eval mode.

    Raises:
        ValueError: the state dict does not fill the transformers model.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    conf_dict = hf_config_dict(loaded.config)
    conf_dict.pop("architectures")
    conf = AutoConfig.for_model(conf_dict.pop("model_type"), **conf_dict)
    model = AutoModelForCausalLM.from_config(conf, dtype=dtype)
    # the engine's parameters keep their Hugging Face names (some are views of fused
    # or transposed storage): contiguous copies in the layout transformers uses
    state = {k: v.detach().to(dtype).contiguous().clone() for k, v in loaded.model.state_dict().items()}
    expected = dict(model.state_dict())
    missing = [k for k in expected if k not in state and not (loaded.config.tie_word_embeddings and k == "lm_head.weight")]
    if missing:
        raise ValueError(f"the engine's state dict lacks {missing[:5]} for the transformers model")
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    if loaded.config.tie_word_embeddings:
        model.tie_weights()
    return model.eval()


def agreement(a: list[list[int]], b: list[list[int]], n: int = AGREE_TOKENS) -> float:
    """Share of the first ``n`` tokens of each request that ``a`` and ``b`` have alike."""
    same = total = 0
    for x, y in zip(a, b, strict=True):
        x, y = x[:n], y[:n]
        total += max(len(x), len(y))
        same += sum(p == q for p, q in zip(x, y, strict=False))
    return same / total if total else float("nan")


class HFRunner:
    """transformers' ``generate`` on a left-padded batch (``min_new_tokens = max_new_tokens``)."""

    name = "transformers"

    def __init__(self, model: Any, pad: int) -> None:
        self.model = model
        self.pad = pad

    def _padded(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        device = next(self.model.parameters()).device
        return ids.to(device), mask.to(device)

    def batch(self, prompts: list[list[int]], new_tokens: int,
              ttft_prompts: list[list[int]] | None = None) -> dict[str, Any]:
        """Times one output token on ``ttft_prompts`` (default ``prompts``: then the
        measured call repeats them), then ``new_tokens`` on ``prompts``."""
        device = next(self.model.parameters()).device

        def gen(batch: list[list[int]], n: int) -> tuple[float, Any]:
            ids, mask = self._padded(batch)
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                                          do_sample=False, pad_token_id=self.pad)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - t0, out

        t1, _ = gen(ttft_prompts or prompts, 1)
        wall, out = gen(prompts, new_tokens)
        width = max(len(p) for p in prompts)
        return {"tok_s": len(prompts) * new_tokens / wall, "ttft_s": t1,
                "tpot_s": (wall - t1) / max(1, new_tokens - 1), "wall_s": wall,
                "tokens": [row[width:].tolist() for row in out]}


def fp32_reference(model: Path, device: str) -> HFRunner:
    """transformers over ``model`` loaded by our loader in float32: the reference a
    reduced-precision run's greedy tokens are compared with."""
    from agentic_llm.engine.loader import load_model

    ref = hf_model_from_loaded(load_model(model, device=device, dtype=torch.float32)).to(device)
    return HFRunner(ref, int(ref.config.pad_token_id if ref.config.pad_token_id is not None else 0))


def write_hf_checkpoint(model: Any, loaded: LoadedModel, out: Path) -> Path:
    """``model`` (from :func:`hf_model_from_loaded`) as a Hugging Face directory in
    ``out``, with the tokenizer ``loaded`` carries; ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    if loaded.tokenizer is not None:
        loaded.tokenizer.save(str(out / "tokenizer.json"))
        (out / "tokenizer_config.json").write_text(json.dumps(
            {"tokenizer_class": "PreTrainedTokenizerFast", **{f"{k}_token": v for k, v in
                                                               loaded.special_tokens.items()}}), encoding="utf-8")
    return out


def vllm_or_note() -> tuple[Any, str]:
    """``(vllm module, "")`` when vLLM imports here, else ``(None, note)``."""
    # vLLM logs to stdout by default, which holds the bench's table or JSON; its
    # logging is set up at import, in this process and in its engine process
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    try:
        import vllm
    except Exception as exc:  # not installed, or a build for another torch: the row is left out
        return None, (f"vLLM row skipped: `import vllm` failed ({type(exc).__name__}: {str(exc)[:120]}); "
                      "see docs/benchmarks.md to install the CPU build")
    return vllm, ""


class VllmRunner:
    """vLLM's offline ``LLM`` over a checkpoint directory, prompts as token ids, greedy.

    Args:
        vllm: the imported module.
        model_dir: a Hugging Face directory (:func:`write_hf_checkpoint`).
        dtype: "float32", "bfloat16", ...
        max_model_len: longest prompt + output it must hold.
        eager: ``enforce_eager`` (no torch.compile / graph capture: a short start).
        threads: CPU cores vLLM binds its threads to (``VLLM_CPU_OMP_THREADS_BIND``
            ``0-(threads-1)``) unless that variable is already set.
    """

    name = "vllm"

    def __init__(self, vllm: Any, model_dir: Path, *, dtype: str, max_model_len: int, max_num_seqs: int,
                 eager: bool, threads: int) -> None:
        self._vllm = vllm
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{threads - 1}" if threads > 1 else "0")
        self.binding = os.environ["VLLM_CPU_OMP_THREADS_BIND"]
        # the CPU build reserves a share of all memory unless given a KV size: 1 GiB
        # (VLLM_CPU_KVCACHE_SPACE, in GiB, when set, wins)
        kv = {} if "VLLM_CPU_KVCACHE_SPACE" in os.environ else {"kv_cache_memory_bytes": 1 << 30}
        t0 = time.perf_counter()
        self.llm = vllm.LLM(model=str(model_dir), dtype=dtype, skip_tokenizer_init=True, seed=0,
                            max_model_len=max_model_len, max_num_seqs=max_num_seqs, enforce_eager=eager, **kv)
        self.start_s = time.perf_counter() - t0
        cache = getattr(getattr(getattr(self.llm, "llm_engine", None), "vllm_config", None), "cache_config", None)
        on = getattr(cache, "enable_prefix_caching", None)
        #: vLLM's own prefix cache, left at its default ("on", "off", or "?" unknown)
        self.prefix_caching = "?" if on is None else "on" if on else "off"

    def _params(self, n: int) -> Any:
        return self._vllm.SamplingParams(temperature=0.0, max_tokens=n, min_tokens=n, ignore_eos=True,
                                         detokenize=False)

    def batch(self, prompts: list[list[int]], new_tokens: int,
              ttft_prompts: list[list[int]] | None = None) -> dict[str, Any]:
        """As :meth:`HFRunner.batch`. vLLM's prefix cache (on by default) keeps what
        earlier calls computed: a measured call that repeats the TTFT call's prompts
        skips their prefill."""
        def gen(batch: list[list[int]], n: int) -> tuple[float, Any]:
            inputs = [{"prompt_token_ids": list(p)} for p in batch]
            t0 = time.perf_counter()
            out = self.llm.generate(inputs, self._params(n), use_tqdm=False)
            return time.perf_counter() - t0, out

        t1, _ = gen(ttft_prompts or prompts, 1)
        wall, out = gen(prompts, new_tokens)
        return {"tok_s": len(prompts) * new_tokens / wall, "ttft_s": t1,
                "tpot_s": (wall - t1) / max(1, new_tokens - 1), "wall_s": wall,
                "tokens": [list(o.outputs[0].token_ids) for o in out]}
