"""Engine settings (frozen, validated)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["EngineConfig"]


@dataclass(frozen=True)
class EngineConfig:
    """How the engine sizes its KV pool and batches.

    Attributes:
        device: torch device string ("cpu", "cuda", "cuda:1").
        dtype: compute and KV dtype.
        block_size: token slots per KV page.
        num_blocks: KV pages; when None they are sized from ``kv_memory_bytes``.
        kv_memory_bytes: KV budget used when ``num_blocks`` is None.
        max_num_seqs: most requests running at once.
        max_num_batched_tokens: most tokens per forward step (long prefills are chunked).
        max_model_len: longest sequence (prompt + output); defaults to the model's
            ``max_position_embeddings``, capped by the pool's capacity.
        attention_backend: registry name of the attention backend.
        scheduling_policy: registry name of the scheduling policy.
        scheduling_options: keyword arguments of that policy's constructor
            (``{"coalesce_steps": 2}`` for ``branch_aware``).
        shuffle_seed: shuffle the pool's free list (tests: pages scattered).
        share_prefill_prefixes: requests prefilled in the same step compute the
            full KV pages their prompts share once (see ``engine.prefill_share``).
        mask_fill_overlap: where constraint masks are filled, settled once when the
            engine is built: on a worker thread, beside the forward when it releases
            the GIL and after it otherwise (True); inline on the engine thread
            (False); or None, which resolves at build to the worker when decode
            steps will release the GIL (``compile_decode`` on the CPU with a
            compiler) and the process may use a second CPU, else inline (see
            ``engine.masking``).
        mask_fill_spin_ms: how long the mask worker, after a fill, waits for the
            next one on a counter in C (the GIL released, one CPU busy) before it
            sleeps; handing a fill to a sleeping thread costs the engine thread a
            wake-up (about 50 us on a small VM). 0 always sleeps.
        compile_decode: compile the pure-decode step (torch.export + AOTInductor)
            at its first use; without a working compiler the eager step runs (one
            warning). Logits then match the eager path within float rounding.
        pack_weights: keep copies of the projection weights for the matmuls where
            they are faster (``models.packed``): oneDNN-packed (wide float32
            matrices from 4 rows, bf16 from 1) and row-major copies for the few-row
            C kernel (float32, 1 to 8 rows); True packs, False never; None (the
            default) packs on a CPU with oneDNN or the C kernel when the projections
            take at most 1 GiB (the copies add up to twice that much memory).
        compile_cache_dir: where compiled decode steps are kept across engine starts
            (keyed by model fingerprint, torch version, machine and code; see
            ``models.compile_cache``); None: ``AGENTIC_COMPILE_CACHE_DIR``, else
            ``~/.cache/agentic-llm/compile``; "" keeps none.
    """

    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    block_size: int = 16
    num_blocks: int | None = None
    kv_memory_bytes: int = 256 * 1024 * 1024
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 4096
    max_model_len: int | None = None
    attention_backend: str = "torch_sdpa"
    scheduling_policy: str = "fcfs"
    scheduling_options: Mapping[str, Any] = field(default_factory=dict)
    shuffle_seed: int | None = None
    share_prefill_prefixes: bool = True
    mask_fill_overlap: bool | None = None
    mask_fill_spin_ms: float = 2.0
    compile_decode: bool = False
    compile_cache_dir: str | None = None
    pack_weights: bool | None = None

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        if not self.mask_fill_spin_ms >= 0:
            raise ValueError(f"mask_fill_spin_ms must be >= 0, got {self.mask_fill_spin_ms}")
        if self.num_blocks is not None and self.num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {self.num_blocks}")
        if self.kv_memory_bytes < 1:
            raise ValueError("kv_memory_bytes must be > 0")
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1:
            raise ValueError("max_num_seqs and max_num_batched_tokens must be >= 1")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError("max_model_len must be >= 2")
        if self.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {self.dtype}")
