"""Load a Llama-architecture GGUF checkpoint into the engine's model.

Weights are dequantized at load (``dequant.py``) and cast to the requested dtype;
the engine then runs them as any other checkpoint. llama.cpp's converter stores the
q and k projections with the rotary halves interleaved per head; they are put back
in the Hugging Face layout here, so logits equal those of the original model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from agentic_llm.engine.gguf.dequant import dequantize
from agentic_llm.engine.gguf.metadata import GGUFFile, find_gguf, model_config, open_gguf
from agentic_llm.engine.gguf.tokenizer import special_token, tokenizer_from_metadata
from agentic_llm.errors import AgenticError, ErrorCode

if TYPE_CHECKING:
    from agentic_llm.engine.loader import LoadedModel

__all__ = ["load_gguf", "hf_name", "read_state_dict"]

_TOP = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_BLOCK = re.compile(r"blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")


def hf_name(gguf_name: str) -> str | None:
    """The Hugging Face parameter name of a GGUF tensor (None for tensors we do not use)."""
    if gguf_name in _TOP:
        return _TOP[gguf_name]
    m = _BLOCK.match(gguf_name)
    if m and m.group(2) in _LAYER:
        return f"model.layers.{m.group(1)}.{_LAYER[m.group(2)]}.{m.group(3)}"
    return None


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's per-head interleaving of the rotary halves (rows of q/k)."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_state_dict(g: GGUFFile, *, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Every used tensor of ``g``, dequantized, under its Hugging Face name, in ``dtype``."""
    heads = int(g.arch_key("attention.head_count"))
    kv_heads = int(g.arch_key("attention.head_count_kv") or heads)
    out: dict[str, torch.Tensor] = {}
    for t in g.tensors:
        name = hf_name(t.name)
        if name is None:
            continue
        shape = tuple(int(x) for x in reversed(list(t.shape)))
        arr = dequantize(t.data, t.tensor_type.name, shape)
        if t.name.endswith("attn_q.weight"):
            arr = _unpermute(arr, heads)
        elif t.name.endswith("attn_k.weight"):
            arr = _unpermute(arr, kv_heads)
        out[name] = torch.from_numpy(np.ascontiguousarray(arr)).to(dtype)
    return out


def load_gguf(path: str | Path, *, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32, adapter: str | Path | None = None,
              weight_dtype: torch.dtype | None = None) -> LoadedModel:
    """Load the GGUF checkpoint at ``path`` (a file, or a directory holding one), with
    the LoRA ``adapter`` merged into its dequantized weights when given
    (``weight_dtype``: as ``loader.load_model``).

    Raises:
        AgenticError: ERR_MODEL_NOT_FOUND when ``path`` holds no GGUF file,
            ERR_UNSUPPORTED_MODEL for an architecture, tensor type or tokenizer
            this loader does not handle.
    """
    from agentic_llm.engine.loader import LoadedModel, build_model

    file = find_gguf(path)
    if file is None:
        raise AgenticError(ErrorCode.MODEL_NOT_FOUND, f"{path} is not a GGUF file or a directory "
                           "holding one", path=str(path))
    g = open_gguf(file)
    cfg = model_config(g)
    state = read_state_dict(g, dtype=dtype)
    if adapter is not None:
        from agentic_llm.engine.lora import merge_adapter

        merge_adapter(state, adapter, base_file=file)
    model = build_model(cfg, state, device=device, dtype=dtype, source=file, weight_dtype=weight_dtype)
    tokenizer = tokenizer_from_metadata(g.metadata)
    eos = cfg.eos_token_ids
    template = g.metadata.get("tokenizer.chat_template")
    return LoadedModel(model, cfg, tokenizer, tuple(eos), file.parent,
                       chat_template=str(template) if template else None,
                       special_tokens={k: v for k in ("bos", "eos")
                                       if (v := special_token(g.metadata, k)) is not None},
                       adapter=Path(adapter) if adapter is not None else None)
