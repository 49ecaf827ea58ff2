"""Assemble a :class:`Pipeline` from a :class:`~agentic_llm.config.ServerConfig`.

Resolves the model directory (config, then ``AGENTIC_MODEL_DIR``, then the shipped
model), loads the engine with a radix prefix cache over its KV pool, builds the
grammar compiler for the model's tokenizer and opens the subgraph cache store.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import torch

from agentic_llm import envs
from agentic_llm.config import ServerConfig
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.serving.admission import Admission
from agentic_llm.serving.pipeline import Pipeline, PipelineParts

__all__ = ["resolve_model_dir", "build_engine", "build_pipeline"]

_log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_dir(configured: str = "") -> Path:
    """The checkpoint to serve: ``configured``, ``AGENTIC_MODEL_DIR``, or the shipped model.

    Raises:
        AgenticError: ERR_MODEL_NOT_FOUND naming what was tried.
    """
    if configured:
        path = Path(configured).expanduser()
    elif envs.model_dir() is not None:
        path = envs.model_dir()  # type: ignore[assignment]
    else:
        try:
            models = importlib.import_module("agentic_llm.models")
            path = Path(models.default_model_dir())
        except (ImportError, AttributeError):
            raise AgenticError(
                ErrorCode.MODEL_NOT_FOUND,
                "no model configured: set model.dir in the profile, --model, or AGENTIC_MODEL_DIR",
            ) from None
    from agentic_llm.engine.loader import is_checkpoint

    if not is_checkpoint(path):
        raise AgenticError(ErrorCode.MODEL_NOT_FOUND,
                           f"{path} is not a model (no config.json, no .gguf file)", path=str(path))
    return path


def build_engine(config: ServerConfig, model_dir: Path) -> Any:
    """An ``LLMEngine`` for ``model_dir`` sized by ``config`` (radix prefix cache on request)."""
    from agentic_llm.engine import LLMEngine
    from agentic_llm.models import resolve_adapter

    m = config.model
    prefix_cache = None
    if m.prefix_cache:
        from agentic_llm.cache import RadixCache

        prefix_cache = RadixCache  # built by the engine over its own KV pool
    engine = LLMEngine.from_pretrained(
        model_dir, device=m.device, dtype=_DTYPES[m.dtype], num_blocks=m.num_blocks,
        block_size=m.block_size, max_num_seqs=max(1, config.limits.max_concurrent),
        prefix_cache=prefix_cache, scheduling_policy=m.scheduling_policy,
        scheduling_options=dict(m.scheduling_options),
        compile_decode=m.compile_decode, adapter=resolve_adapter(m.adapter, model_dir),
        weight_dtype=_DTYPES[m.weight_dtype] if m.weight_dtype else None,
    )
    return engine


def _precision(config: ServerConfig) -> str:
    """The engine's precision as the subgraph cache's version names it."""
    m = config.model
    return m.dtype if m.weight_dtype in ("", m.dtype) else f"{m.dtype}-w{m.weight_dtype}"


def _adapter_of(engine: Any) -> Path | None:
    return getattr(getattr(engine, "loaded", None), "adapter", None)


def build_compiler(model_dir: Path, engine: Any) -> Any:
    """The grammar compiler for ``engine``'s vocabulary, prepared as ``serve`` starts it."""
    from agentic_llm.grammar import GrammarCompiler, TokenizerInfo

    if getattr(engine, "tokenizer", None) is not None:  # HF tokenizer.json or built from GGUF
        info = TokenizerInfo.from_tokenizer(engine.tokenizer, vocab_size=engine.model_config.vocab_size,
                                            name=str(model_dir))
    else:
        info = TokenizerInfo.from_hf_tokenizer_json(
            model_dir / "tokenizer.json", vocab_size=engine.model_config.vocab_size)
    compiler = GrammarCompiler(info)
    # The standard node-type whitelists are compiled now, so a request's grammar
    # is a cache hit and its first token is not delayed by a compile.
    compiler.precompile_standard()
    # Their mask caches are filled from exemplar documents too (under a second on a
    # small vocabulary), so early requests do not pay xgrammar's full mask per class.
    compiler.warm_masks(walks=0)
    return compiler


def _chat_template(config: ServerConfig, engine: Any) -> Any:
    """The model's chat template when it ships one and the profile keeps it on."""
    if not config.model.chat_template:
        return None
    from agentic_llm.planner.chat import ChatTemplate

    return ChatTemplate.from_engine(engine)


def build_pipeline(config: ServerConfig, *, engine: Any = None, model_dir: Path | None = None,
                   cache: bool = True, constrained: bool = True, jump_forward: bool = True) -> Pipeline:
    """The pipeline ``agentic-llm serve`` runs: engine, grammar, caches, admission.

    ``cache=False`` leaves the subgraph cache out, ``constrained=False`` the grammar
    (outputs are still validated), ``jump_forward=False`` the forced-text shortcut:
    offline evaluation (``serving.local``) uses them.
    """
    from agentic_llm.engine.fingerprint import engine_version
    from agentic_llm.library import open_library
    from agentic_llm.serving.subgraphs import open_subgraph_cache

    model_dir = model_dir or resolve_model_dir(config.model.dir)
    engine = engine or build_engine(config, model_dir)
    knowledge = None
    if config.aga.enabled:
        from agentic_llm.serving.aga_admin import attach_aga

        knowledge = attach_aga(engine, config.aga.config, retriever=config.aga.retriever,
                               knowledge_base_slots=config.aga.knowledge_base_slots)
    parts = PipelineParts(
        engine=engine,
        compiler=build_compiler(model_dir, engine) if constrained else None,
        cache=open_subgraph_cache(config.cache, engine_version(model_dir, _adapter_of(engine), _precision(config)))
        if cache else None,
        jump_forward=jump_forward,
        knowledge=knowledge,
        max_model_len=int(getattr(engine, "max_model_len", 0) or 0),
        library=open_library(config.library),
        chat=_chat_template(config, engine),
    )
    lim = config.limits
    return Pipeline(parts, admission=Admission(lim.max_concurrent, lim.max_queue),
                    default_timeout_sec=lim.default_timeout_sec)
