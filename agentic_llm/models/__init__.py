"""Shipped checkpoints (generation runs on ``agentic_llm.serving``).

``agentic-tiny`` (in ``agentic-tiny/``) is a small Llama trained by the scripts in
``training/`` to write AgenticDSL subgraphs for generate_subgraph requests; see
its ``MODEL_CARD.md``. It loads through the same loader as any HF checkpoint.

    from agentic_llm.models import default_model_dir
    engine = LLMEngine.from_pretrained(default_model_dir())
"""

from __future__ import annotations

from pathlib import Path

from agentic_llm import envs

__all__ = ["SHIPPED_MODEL", "shipped_model_dir", "default_model_dir"]

SHIPPED_MODEL = "agentic-tiny"


def shipped_model_dir() -> Path:
    """The directory of the model shipped in this package (whatever the environment says)."""
    return Path(__file__).resolve().parent / SHIPPED_MODEL


def default_model_dir() -> Path:
    """The checkpoint to use when none is given: ``AGENTIC_MODEL_DIR`` if set, else the shipped one."""
    override = envs.model_dir()
    return override if override is not None else shipped_model_dir()
