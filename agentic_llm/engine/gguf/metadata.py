"""Open a GGUF file and read its metadata: architecture, tokenizer, chat template.

``find_gguf`` resolves what a user passes as ``--model`` (a ``.gguf`` file, or a
directory holding exactly one and no ``config.json``); ``model_config`` turns the
``<arch>.*`` keys into the engine's :class:`~agentic_llm.engine.config.ModelConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentic_llm.engine.config import ModelConfig
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["GGUFFile", "find_gguf", "is_gguf_checkpoint", "open_gguf", "model_config"]

SUPPORTED_GGUF_ARCHITECTURES = ("llama",)


@dataclass
class GGUFFile:
    """An opened GGUF file: its path, scalar/array metadata and tensor records."""

    path: Path
    metadata: dict[str, Any]
    tensors: list[Any] = field(repr=False)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_key(self, key: str, default: Any = None) -> Any:
        """``<architecture>.<key>`` from the metadata."""
        return self.metadata.get(f"{self.architecture}.{key}", default)


def find_gguf(path: str | Path) -> Path | None:
    """The GGUF file ``path`` names, or None when it is not a GGUF checkpoint.

    A directory counts when it holds ``*.gguf`` files and no ``config.json`` (an HF
    checkpoint wins). Several ``.gguf`` files in one directory are ambiguous.

    Raises:
        AgenticError: ERR_MODEL_NOT_FOUND for a directory with several GGUF files.
    """
    p = Path(path).expanduser()
    if p.is_file():
        return p if p.suffix.lower() == ".gguf" else None
    if not p.is_dir() or (p / "config.json").is_file():
        return None
    files = sorted(p.glob("*.gguf"))
    if len(files) > 1:
        raise AgenticError(ErrorCode.MODEL_NOT_FOUND,
                           f"{p} holds {len(files)} GGUF files ({', '.join(f.name for f in files)}); "
                           "pass one file", path=str(p))
    return files[0] if files else None


def is_gguf_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a ``.gguf`` file or a directory holding exactly one."""
    try:
        return find_gguf(path) is not None
    except AgenticError:
        return False


def _value(field_: Any) -> Any:
    try:
        return field_.contents()
    except Exception:  # a type the reader cannot render: keep going without it
        return None


def open_gguf(path: str | Path) -> GGUFFile:
    """Memory-map ``path`` and read its metadata.

    Raises:
        AgenticError: ERR_RESOURCE_UNAVAILABLE when the ``gguf`` package is missing,
            ERR_UNSUPPORTED_MODEL when the file cannot be parsed.
    """
    try:
        import gguf
    except ImportError as exc:
        raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE,
                           "reading GGUF checkpoints needs the gguf package (pip install gguf)") from exc
    p = Path(path)
    try:
        reader = gguf.GGUFReader(str(p))
    except Exception as exc:  # any parse error is a bad file the user must replace
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"cannot read GGUF file {p.name}: {exc}",
                           path=str(p)) from exc
    meta = {k: _value(f) for k, f in reader.fields.items()}
    return GGUFFile(p, meta, list(reader.tensors))


def model_config(g: GGUFFile) -> ModelConfig:
    """The engine's config for the architecture ``g`` describes.

    Raises:
        AgenticError: ERR_UNSUPPORTED_MODEL for another architecture or missing keys.
    """
    arch = g.architecture
    if arch not in SUPPORTED_GGUF_ARCHITECTURES:
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL,
                           f"GGUF architecture {arch!r} is not supported; supported: "
                           f"{', '.join(SUPPORTED_GGUF_ARCHITECTURES)}", architecture=arch)
    need = ("embedding_length", "feed_forward_length", "block_count", "attention.head_count")
    missing = [f"{arch}.{k}" for k in need if g.arch_key(k) is None]
    if missing:
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"{g.path.name} lacks {', '.join(missing)}")
    heads = int(g.arch_key("attention.head_count"))
    hidden = int(g.arch_key("embedding_length"))
    tokens = g.metadata.get("tokenizer.ggml.tokens") or []
    vocab = int(g.arch_key("vocab_size") or len(tokens))
    names = {t.name for t in g.tensors}
    cfg: dict[str, Any] = {
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": int(g.arch_key("feed_forward_length")),
        "num_hidden_layers": int(g.arch_key("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(g.arch_key("attention.head_count_kv") or heads),
        "head_dim": int(g.arch_key("attention.key_length") or hidden // heads),
        "max_position_embeddings": int(g.arch_key("context_length") or 2048),
        "rms_norm_eps": float(g.arch_key("attention.layer_norm_rms_epsilon") or 1e-5),
        "rope_theta": float(g.arch_key("rope.freq_base") or 10000.0),
        "tie_word_embeddings": "output.weight" not in names,
        "eos_token_id": g.metadata.get("tokenizer.ggml.eos_token_id"),
        "bos_token_id": g.metadata.get("tokenizer.ggml.bos_token_id"),
    }
    scaling = g.arch_key("rope.scaling.type")
    if scaling and scaling != "none":
        cfg["rope_scaling"] = {"rope_type": scaling, "factor": float(g.arch_key("rope.scaling.factor") or 1.0)}
    return ModelConfig.from_hf_dict(cfg)
