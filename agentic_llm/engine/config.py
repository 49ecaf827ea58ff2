"""Model architecture read from a checkpoint's ``config.json``.

One frozen dataclass covers the Llama, Qwen2 and Qwen3 families: they differ only in
attention biases, per-head q/k norms and the RoPE scaling the checkpoint asks for.
Both config layouts are read: ``rope_theta`` + ``rope_scaling`` (transformers 4) and
``rope_parameters`` (transformers 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["ModelConfig", "RopeScaling", "SUPPORTED_ARCHITECTURES"]

#: model_type -> (qkv bias default, per-head q/k RMSNorm)
_FAMILIES: dict[str, tuple[bool, bool]] = {
    "llama": (False, False),
    "qwen2": (True, False),
    "qwen3": (False, True),
}
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
_ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling; ``rope_type`` is one of default, linear, llama3."""

    rope_type: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of a decoder-only checkpoint."""

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: RopeScaling = field(default_factory=RopeScaling)
    attention_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    tie_word_embeddings: bool = False
    eos_token_ids: tuple[int, ...] = ()
    bos_token_id: int | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "head_dim"):
            if getattr(self, name) <= 0:
                raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"config.json: {name} must be > 0")
        if self.num_attention_heads % self.num_key_value_heads:
            raise AgenticError(
                ErrorCode.UNSUPPORTED_MODEL,
                f"config.json: num_attention_heads ({self.num_attention_heads}) is not a "
                f"multiple of num_key_value_heads ({self.num_key_value_heads})",
            )

    @property
    def num_kv_groups(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    @classmethod
    def from_hf_dict(cls, cfg: dict[str, Any]) -> ModelConfig:
        """Build from a parsed ``config.json``.

        Raises:
            AgenticError: ERR_UNSUPPORTED_MODEL naming the field or value not supported.
        """
        model_type = cfg.get("model_type")
        if model_type not in _FAMILIES:
            archs = cfg.get("architectures") or []
            raise AgenticError(
                ErrorCode.UNSUPPORTED_MODEL,
                f"model_type {model_type!r} (architectures {archs}) is not supported; "
                f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}",
                model_type=model_type,
            )
        bias_default, qk_norm = _FAMILIES[model_type]
        act = cfg.get("hidden_act", "silu")
        if act != "silu":
            raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"hidden_act {act!r} is not supported (only silu)")
        if cfg.get("use_sliding_window"):
            raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, "use_sliding_window=true is not supported")
        missing = [k for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                               "num_attention_heads") if k not in cfg]
        if missing:
            raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"config.json lacks {', '.join(missing)}")
        heads = int(cfg["num_attention_heads"])
        kv_heads = int(cfg.get("num_key_value_heads") or heads)
        head_dim = cfg.get("head_dim") or int(cfg["hidden_size"]) // heads
        rope_theta, scaling = _rope(cfg)
        eos = cfg.get("eos_token_id")
        eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (int(eos),))
        return cls(
            model_type=model_type,
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=int(cfg["hidden_size"]),
            intermediate_size=int(cfg["intermediate_size"]),
            num_hidden_layers=int(cfg["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=int(head_dim),
            max_position_embeddings=int(cfg.get("max_position_embeddings", 2048)),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            rope_theta=rope_theta,
            rope_scaling=scaling,
            attention_bias=bool(cfg.get("attention_bias", bias_default)),
            mlp_bias=bool(cfg.get("mlp_bias", False)),
            qk_norm=qk_norm,
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            eos_token_ids=eos_ids,
            bos_token_id=cfg.get("bos_token_id"),
        )


def _rope(cfg: dict[str, Any]) -> tuple[float, RopeScaling]:
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and "full_attention" in params and isinstance(params["full_attention"], dict):
        params = params["full_attention"]
    scaling: dict[str, Any] = dict(cfg.get("rope_scaling") or {})
    if isinstance(params, dict):
        scaling = {**params, **scaling}
    theta = float(scaling.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    rope_type = scaling.get("rope_type", scaling.get("type", "default")) or "default"
    if rope_type not in _ROPE_TYPES:
        raise AgenticError(
            ErrorCode.UNSUPPORTED_MODEL,
            f"rope scaling type {rope_type!r} is not supported; supported: {', '.join(_ROPE_TYPES)}",
        )
    return theta, RopeScaling(
        rope_type=rope_type,
        factor=float(scaling.get("factor", 1.0)),
        low_freq_factor=float(scaling.get("low_freq_factor", 1.0)),
        high_freq_factor=float(scaling.get("high_freq_factor", 4.0)),
        original_max_position_embeddings=int(
            scaling.get("original_max_position_embeddings", cfg.get("max_position_embeddings", 8192))
        ),
    )
