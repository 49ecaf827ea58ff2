"""Load a Hugging Face-format checkpoint from a local directory.

Reads ``config.json``, the weights (``model.safetensors``, sharded safetensors with
``model.safetensors.index.json``, or ``pytorch_model.bin``), ``tokenizer.json``,
``generation_config.json`` and the chat template (``chat_template.jinja`` or
``tokenizer_config.json``). A ``.gguf`` file, or a directory holding one and no
``config.json``, goes to :mod:`agentic_llm.engine.gguf`. Never touches the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from agentic_llm.engine.config import ModelConfig
from agentic_llm.engine.models.decoder import CausalLM
from agentic_llm.engine.models.layers import rope_inv_freq
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["LoadedModel", "load_model", "load_config", "build_model", "read_chat_template",
           "is_checkpoint"]


@dataclass
class LoadedModel:
    """A model ready to run, with what else the checkpoint ships.

    Attributes:
        model: the network, on its device, in eval mode.
        config: its architecture.
        tokenizer: from ``tokenizer.json``; None when the checkpoint has none.
        eos_token_ids: end-of-sequence ids from the generation and model configs.
        model_dir: where it was loaded from (the directory of a GGUF file).
        chat_template: the Jinja chat template an instruct model ships; None otherwise.
        special_tokens: texts of the ``bos`` / ``eos`` tokens, for the template.
        adapter: the LoRA adapter directory merged into the weights, if any.
    """

    model: CausalLM
    config: ModelConfig
    tokenizer: Tokenizer | None
    eos_token_ids: tuple[int, ...]
    model_dir: Path
    chat_template: str | None = None
    special_tokens: dict[str, str] = field(default_factory=dict)
    adapter: Path | None = None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"cannot read {path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"{path.name} is not a JSON object")
    return data


def load_config(model_dir: str | Path) -> ModelConfig:
    """The architecture of the checkpoint ``model_dir``: a directory with config.json,
    or a GGUF file (or a directory holding one), read from its metadata alone.

    Raises:
        AgenticError: ERR_MODEL_NOT_FOUND (no directory or no config.json) or
            ERR_UNSUPPORTED_MODEL.
    """
    d = Path(model_dir)
    from agentic_llm.engine import gguf

    gguf_file = gguf.find_gguf(d) if not (d / "config.json").is_file() else None
    if gguf_file is not None:
        return gguf.model_config(gguf.open_gguf(gguf_file))
    if not d.is_dir():
        raise AgenticError(ErrorCode.MODEL_NOT_FOUND, f"model directory {d} does not exist", path=str(d))
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise AgenticError(ErrorCode.MODEL_NOT_FOUND, f"{d} has no config.json", path=str(d))
    return ModelConfig.from_hf_dict(_read_json(cfg_path))


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is something :func:`load_model` reads: an HF directory with
    ``config.json``, a ``.gguf`` file, or a directory holding one."""
    from agentic_llm.engine.gguf.metadata import is_gguf_checkpoint

    p = Path(path).expanduser()
    return (p / "config.json").is_file() or is_gguf_checkpoint(p)


def _weight_files(d: Path) -> list[Path]:
    index = d / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map", {})
        files = sorted({d / f for f in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise AgenticError(
                ErrorCode.MODEL_NOT_FOUND, f"{d} lacks weight shards {', '.join(missing)}", path=str(d)
            )
        return files
    single = sorted(d.glob("*.safetensors"))
    if single:
        return single
    if (d / "pytorch_model.bin").is_file():
        return [d / "pytorch_model.bin"]
    raise AgenticError(
        ErrorCode.MODEL_NOT_FOUND,
        f"{d} has no weights (model.safetensors, a sharded index, or pytorch_model.bin)",
        path=str(d),
    )


def _read_weights(files: list[Path]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            if f.suffix == ".safetensors":
                out.update(load_file(str(f)))
            else:
                out.update(torch.load(f, map_location="cpu", weights_only=True))
        except Exception as exc:  # a corrupt file: any reader error is the user's to fix
            raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"cannot read weights {f.name}: {exc}") from exc
    return out


def _eos_ids(d: Path, cfg: ModelConfig) -> tuple[int, ...]:
    ids = list(cfg.eos_token_ids)
    gen = d / "generation_config.json"
    if gen.is_file():
        eos = _read_json(gen).get("eos_token_id")
        extra = eos if isinstance(eos, list) else ([] if eos is None else [eos])
        ids.extend(int(e) for e in extra if int(e) not in ids)
    return tuple(ids)


_INIT_FUNCTIONS = ("normal_", "uniform_", "kaiming_uniform_", "trunc_normal_", "zeros_", "ones_")


@contextmanager
def _skip_parameter_init() -> Iterator[None]:
    """Builds modules without their random initialisation: the checkpoint overwrites
    every weight, and ``normal_`` on a meta tensor imports torch's compiler stack
    (``torch._dynamo``, several seconds) for nothing."""
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}

    def keep(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor

    for name in saved:
        setattr(torch.nn.init, name, keep)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def read_chat_template(d: Path) -> tuple[str | None, dict[str, str]]:
    """The chat template and bos/eos token texts an HF checkpoint directory ships.

    ``chat_template.jinja`` wins over ``tokenizer_config.json``'s ``chat_template``
    (a string, or a list of named templates of which ``default`` is used).
    """
    cfg = _read_json(d / "tokenizer_config.json") if (d / "tokenizer_config.json").is_file() else {}
    specials = {k: t for k in ("bos", "eos") if (t := _token_text(cfg.get(f"{k}_token"))) is not None}
    jinja = d / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8"), specials
    template = cfg.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return (template if isinstance(template, str) and template.strip() else None), specials


def build_model(cfg: ModelConfig, state: dict[str, torch.Tensor], *, device: str | torch.device,
                dtype: torch.dtype, source: Path, weight_dtype: torch.dtype | None = None) -> CausalLM:
    """The network for ``cfg`` holding the weights in ``state`` (checked, cast, fused);
    with ``weight_dtype``, the projections' weights in that dtype
    (``CausalLM.cast_projections``).

    Raises:
        AgenticError: ERR_UNSUPPORTED_MODEL naming missing weights or a shape mismatch.
    """
    with torch.device("meta"), _skip_parameter_init():
        model = CausalLM(cfg)
    expected = dict(model.named_parameters())
    if cfg.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    missing = [k for k in expected if k not in state and not (cfg.tie_word_embeddings and k == "lm_head.weight")]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise AgenticError(
            ErrorCode.UNSUPPORTED_MODEL, f"checkpoint {source} lacks {len(missing)} weights: {shown}", missing=missing
        )
    for name, p in expected.items():
        if name in state and tuple(state[name].shape) != tuple(p.shape):
            raise AgenticError(
                ErrorCode.UNSUPPORTED_MODEL,
                f"weight {name} has shape {tuple(state[name].shape)}, config says {tuple(p.shape)}",
            )
    # Every parameter is assigned from the checkpoint (checked above), so the meta
    # tensors are replaced in place; no to_empty (which imports sympy, seconds).
    params = {k: v.to(device=device, dtype=dtype) for k, v in state.items() if k in expected}
    model.load_state_dict(params, strict=False, assign=True)
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    left = [name for name, p in model.named_parameters() if p.is_meta]
    if left:
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"checkpoint {source} did not fill {left[:5]}")
    # buffers were created on the meta device; rebuild them for real
    model.rotary.inv_freq = rope_inv_freq(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling).to(device)
    if weight_dtype is not None and weight_dtype != dtype:
        model.cast_projections(weight_dtype)
    model.fuse_projections()
    model.eval()
    return model


def load_model(
    model_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    adapter: str | Path | None = None,
    weight_dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Load the checkpoint in ``model_dir`` onto ``device`` in ``dtype``.

    Weights stored in another floating dtype (bf16, fp16) are cast to ``dtype``;
    a GGUF checkpoint (``.gguf`` file or a directory holding one) is dequantized.
    ``adapter`` (a LoRA adapter directory, ``engine.lora``) is merged into the
    weights before the network is built. ``weight_dtype`` (e.g. bfloat16 under a
    float32 ``dtype``) holds the projections' weights in that dtype: half the weight
    bytes, and the CPU's bf16 matmul units where it has them, at a small cost in
    precision (norms, residuals, attention and K/V stay in ``dtype``).

    Raises:
        AgenticError: ERR_MODEL_NOT_FOUND naming the missing directory or file, or
            ERR_UNSUPPORTED_MODEL naming the unsupported architecture, option, or the
            weights the checkpoint lacks.
    """
    from agentic_llm.engine.gguf.metadata import find_gguf

    if find_gguf(model_dir) is not None:
        from agentic_llm.engine.gguf.loader import load_gguf

        return load_gguf(model_dir, device=device, dtype=dtype, adapter=adapter, weight_dtype=weight_dtype)
    d = Path(model_dir)
    cfg = load_config(d)
    files = _weight_files(d)
    state = _read_weights(files)
    if adapter is not None:
        from agentic_llm.engine.lora import merge_adapter

        merge_adapter(state, adapter, base_file=files[0] if len(files) == 1 else None)
    model = build_model(cfg, state, device=device, dtype=dtype, source=d, weight_dtype=weight_dtype)
    tok_path = d / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(tok_path)) if tok_path.is_file() else None
    template, specials = read_chat_template(d)
    return LoadedModel(model, cfg, tokenizer, _eos_ids(d, cfg), d,
                       chat_template=template, special_tokens=specials,
                       adapter=Path(adapter) if adapter is not None else None)
