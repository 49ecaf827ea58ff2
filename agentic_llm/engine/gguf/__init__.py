"""GGUF checkpoints: metadata, dequantization, tokenizer and chat template, loading.

``load_gguf`` returns the same :class:`~agentic_llm.engine.loader.LoadedModel` the
Hugging Face loader does; ``agentic_llm.engine.loader.load_model`` picks it for a
``.gguf`` file or a directory holding one.
"""

from agentic_llm.engine.gguf.dequant import SUPPORTED_TYPES, dequantize
from agentic_llm.engine.gguf.loader import load_gguf, read_state_dict
from agentic_llm.engine.gguf.metadata import find_gguf, is_gguf_checkpoint, model_config, open_gguf
from agentic_llm.engine.gguf.tokenizer import tokenizer_from_metadata

__all__ = [
    "SUPPORTED_TYPES",
    "dequantize",
    "find_gguf",
    "is_gguf_checkpoint",
    "load_gguf",
    "model_config",
    "open_gguf",
    "read_state_dict",
    "tokenizer_from_metadata",
]
