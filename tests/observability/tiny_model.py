"""A tiny random-weight Llama checkpoint written directly with safetensors.

Writing the tensors by hand keeps these tests free of the (slow to import)
transformers package; the layout is the Hugging Face Llama one the loader reads.
"""

from __future__ import annotations

from pathlib import Path

from agentic_llm.models.random_init import write_random_llama

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB = 32, 64, 2, 4, 2, 128


def write_tiny_llama(path: Path, seed: int = 0) -> Path:
    """Write config.json and model.safetensors of a 2-layer Llama to ``path``."""
    return write_random_llama(path, hidden=HIDDEN, intermediate=INTER, layers=LAYERS,
                              heads=HEADS, kv_heads=KV_HEADS, vocab_size=VOCAB,
                              max_positions=256, std=0.05, seed=seed)
