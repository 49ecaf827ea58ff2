"""A short fingerprint of a checkpoint: what the subgraph cache's engine version covers.

A cached subgraph is only as good as the model, tokenizer and grammar that wrote it.
:func:`model_fingerprint` hashes the checkpoint's ``config.json`` and
``generation_config.json`` and ``tokenizer.json`` in full, and each weight file by
name, size and its first and last MiB (a full hash of multi-GB weights would cost
seconds at every start; a retrained or swapped checkpoint differs in those bytes or
in its size). :func:`engine_version` joins it to the planner's version (package and
grammar), so an on-disk cache never serves another model's answers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["engine_version", "model_fingerprint"]

_FULL = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "adapter_config.json")
_WEIGHTS = (".safetensors", ".bin", ".pt", ".gguf")
_EDGE = 1 << 20


def model_fingerprint(model_dir: str | Path) -> str:
    """16 hex digits that change when the model, its tokenizer or its configs change.

    ``model_dir`` may also be a single checkpoint file (a ``.gguf``), which carries
    its tokenizer and configs inside.
    """
    root = Path(model_dir)
    h = hashlib.sha256()
    for path in sorted(root.iterdir()) if root.is_dir() else [root]:
        if not path.is_file():
            continue
        if path.name in _FULL:
            h.update(f"{path.name}\0".encode())
            h.update(path.read_bytes())
        elif path.suffix in _WEIGHTS:
            size = path.stat().st_size
            h.update(f"{path.name}\0{size}\0".encode())
            with path.open("rb") as fh:
                h.update(fh.read(_EDGE))
                if size > 2 * _EDGE:
                    fh.seek(size - _EDGE)
                    h.update(fh.read(_EDGE))
    return h.hexdigest()[:16]


def engine_version(model_dir: str | Path, adapter: str | Path | None = None, precision: str = "float32") -> str:
    """The subgraph cache's engine version for ``model_dir`` (and the LoRA ``adapter``
    merged into it, if any) run in ``precision`` (the compute dtype, and the weights'
    when narrower, e.g. ``float32-wbfloat16``): planner version + model (+ adapter)
    (+ precision, unless float32: other precisions write other greedy outputs)."""
    from agentic_llm.planner.plan import ENGINE_VERSION

    version = f"{ENGINE_VERSION}+m{model_fingerprint(model_dir)}"
    if adapter is not None:
        version += f"+a{model_fingerprint(adapter)}"
    return version if precision == "float32" else f"{version}+{precision}"
