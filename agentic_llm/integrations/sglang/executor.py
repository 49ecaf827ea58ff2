"""SGLang's offline ``Engine`` as an executor: prompt + grammar key in, text out.

The small interface the serving layer can hold (``Executor``): the planner, the
subgraph cache, validation and the node stream stay ours; the model work, tensor
parallelism and prefix sharing (fork siblings share their prompt prefix, which
SGLang's radix cache reuses) are SGLang's. ``check_runtime`` refuses early and
clearly where SGLang cannot run: no SGLang installed, no CUDA device, fewer devices
than ``--tp``, no model directory.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.integrations.sglang.key import BACKEND_NAME, grammar_key

__all__ = ["Executor", "SGLangOptions", "SGLangExecutor", "check_runtime", "sampling_params"]


class Executor(Protocol):
    """What the serving pipeline needs from a remote or external model executor."""

    def stream(self, prompt: str, request: Mapping[str, Any], *, max_new_tokens: int,
               temperature: float = 0.0, seed: int | None = None) -> Iterator[str]:
        """Text deltas of one constrained generation for ``request`` (its JSON object)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SGLangOptions:
    """How to start SGLang.

    Args:
        model_path: a Hugging Face model directory SGLang can load.
        tp: tensor-parallel degree (GPUs per replica).
    """

    model_path: str
    tp: int = 1

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ValueError("--model-path is required with --backend sglang")
        if self.tp < 1:
            raise ValueError(f"--tp must be at least 1, got {self.tp}")


def check_runtime(options: SGLangOptions) -> None:
    """Refuse before starting anything when SGLang cannot run here.

    Raises:
        AgenticError: ERR_RESOURCE_UNAVAILABLE (no SGLang, no CUDA device, too few
            devices for ``tp``) or ERR_MODEL_NOT_FOUND (no ``config.json``).
    """
    import torch

    if importlib.util.find_spec("sglang") is None:
        raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE,
                           "--backend sglang needs SGLang: pip install -e '.[sglang]' on a CUDA machine")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE,
                           f"--backend sglang needs a CUDA device and none is visible (torch "
                           f"{torch.__version__}, {build}); use the native backend on this machine")
    have = torch.cuda.device_count()
    if have < options.tp:
        raise AgenticError(ErrorCode.RESOURCE_UNAVAILABLE,
                           f"--tp {options.tp} needs {options.tp} CUDA devices; {have} visible")
    if not (Path(options.model_path) / "config.json").is_file():
        raise AgenticError(ErrorCode.MODEL_NOT_FOUND,
                           f"{options.model_path} is not a model directory (no config.json)")


def sampling_params(request: Mapping[str, Any], *, max_new_tokens: int, temperature: float,
                    seed: int | None) -> dict[str, Any]:
    """SGLang sampling parameters for one request: our grammar key as ``ebnf``."""
    params: dict[str, Any] = {"ebnf": grammar_key(request), "max_new_tokens": max_new_tokens,
                              "temperature": temperature}
    if seed is not None:
        params["sampling_seed"] = seed
    return params


class SGLangExecutor:
    """An SGLang offline ``Engine`` started with ``--grammar-backend agentic-dsl``."""

    def __init__(self, options: SGLangOptions) -> None:
        check_runtime(options)
        import sglang

        self._engine = sglang.Engine(model_path=options.model_path, tp_size=options.tp,
                                     grammar_backend=BACKEND_NAME)

    def stream(self, prompt: str, request: Mapping[str, Any], *, max_new_tokens: int,
               temperature: float = 0.0, seed: int | None = None) -> Iterator[str]:
        params = sampling_params(request, max_new_tokens=max_new_tokens,
                                 temperature=temperature, seed=seed)
        sent = 0
        for chunk in self._engine.generate(prompt=prompt, sampling_params=params, stream=True):
            meta = chunk.get("meta_info", {})
            reason = (meta.get("finish_reason") or {}) if isinstance(meta, dict) else {}
            if reason.get("type") == "abort":
                # an invalid grammar (our refusal) or a token the grammar rejected
                raise AgenticError(ErrorCode.INVALID_REQUEST, str(reason.get("message", "aborted")))
            text = chunk["text"]
            if len(text) > sent:
                yield text[sent:]
                sent = len(text)

    def close(self) -> None:
        self._engine.shutdown()
