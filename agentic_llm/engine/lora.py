"""LoRA adapters merged into a checkpoint's weights at load.

An adapter directory holds ``adapter.safetensors`` (``<weight name>.lora_a``, shape
``(r, in)``, and ``<weight name>.lora_b``, shape ``(out, r)``, for each adapted
projection) and ``adapter_config.json`` (rank, alpha, the fingerprint of the base
checkpoint it was trained on). Loading adds ``(alpha / r) * B @ A`` to each weight
once, in float32, before the engine builds its network: decoding then costs exactly
what the base model costs.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import torch

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["FORMAT", "base_fingerprint", "read_adapter", "merge_adapter"]

FORMAT = "agentic-llm-lora/1"


@lru_cache(maxsize=8)
def base_fingerprint(path: str | Path) -> str:
    """``sha256:<hex>`` of a checkpoint file (what an adapter was trained on)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def read_adapter(adapter_dir: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The adapter's config and tensors.

    Raises:
        AgenticError: ERR_MODEL_NOT_FOUND when the files are missing,
            ERR_INVALID_CONFIG when the config is not this format.
    """
    from safetensors.torch import load_file

    d = Path(adapter_dir)
    cfg_path, weights = d / "adapter_config.json", d / "adapter.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise AgenticError(ErrorCode.MODEL_NOT_FOUND,
                           f"adapter {d} needs adapter_config.json and adapter.safetensors", path=str(d))
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AgenticError(ErrorCode.INVALID_CONFIG, f"adapter config {cfg_path}: {exc}") from exc
    if cfg.get("format") != FORMAT or not isinstance(cfg.get("rank"), int) or cfg["rank"] <= 0:
        raise AgenticError(ErrorCode.INVALID_CONFIG,
                           f"adapter config {cfg_path}: expected format {FORMAT!r} with a positive rank")
    return cfg, load_file(str(weights))


def merge_adapter(state: dict[str, torch.Tensor], adapter_dir: str | Path, *,
                  base_file: str | Path | None = None) -> int:
    """Add the adapter's updates to ``state`` (Hugging Face weight names) in place;
    returns how many weights changed.

    Raises:
        AgenticError: ERR_UNSUPPORTED_MODEL when the adapter was trained on another
            checkpoint (``base_file``'s fingerprint differs) or names a weight the
            checkpoint lacks or has another shape; the state is then unchanged.
    """
    cfg, tensors = read_adapter(adapter_dir)
    if base_file is not None and cfg.get("base") and cfg["base"] != base_fingerprint(str(base_file)):
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL,
                           f"adapter {adapter_dir} was trained on another checkpoint than {base_file} "
                           f"({cfg.get('base_file', 'unknown')})")
    scale = float(cfg.get("alpha", cfg["rank"])) / cfg["rank"]
    updates: dict[str, torch.Tensor] = {}
    for key, a in tensors.items():
        if not key.endswith(".lora_a"):
            continue
        name = key[: -len(".lora_a")]
        b = tensors.get(f"{name}.lora_b")
        w = state.get(f"{name}.weight")
        if b is None or w is None or tuple(w.shape) != (b.shape[0], a.shape[1]) or b.shape[1] != a.shape[0]:
            raise AgenticError(ErrorCode.UNSUPPORTED_MODEL,
                               f"adapter {adapter_dir}: {name} does not fit the checkpoint")
        updates[f"{name}.weight"] = (b.float() @ a.float()) * scale
    for name, delta in updates.items():
        state[name] = (state[name].float() + delta).to(state[name].dtype)
    return len(updates)
