"""Offline generation on the serving pipeline: ``agentic-llm generate`` and bench/validity.py.

:class:`LocalGenerator` builds the same :class:`~agentic_llm.serving.Pipeline` that
``serve`` runs (plan -> grammar matcher -> engine loop -> node stream -> validation),
over one checkpoint, without a subgraph cache, and turns each request's
:class:`~agentic_llm.serving.ServingResult` (or its ERR_* refusal) into a
:class:`GenerationResult`. Requests given together run concurrently, so the engine
loop batches them; figures measured here are figures of the serving path.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.serving.result import DiagnosticInfo, ServingResult

__all__ = ["GenerationResult", "GenerationTimings", "LocalGenerator"]


@dataclass(frozen=True)
class GenerationTimings:
    """Where the time of one generation went (seconds; token counts).

    ``decode_steps`` are tokens the model sampled; ``forced_tokens`` were appended
    by jump-forward without a step of their own; ``grammar_s`` is planning time.
    """

    ttft_s: float
    tpot_s: float
    total_s: float
    prompt_tokens: int
    output_tokens: int
    decode_steps: int
    forced_tokens: int
    grammar_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        """Output tokens per second of this request's wall time."""
        return self.output_tokens / self.total_s if self.total_s > 0 else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "total_s": self.total_s,
            "tokens_per_s": self.tokens_per_s, "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens, "decode_steps": self.decode_steps,
            "jump_forward_tokens": self.forced_tokens, "grammar_s": self.grammar_s,
        }

    @classmethod
    def of(cls, r: ServingResult) -> GenerationTimings:
        t, c = r.timings, r.counts
        gen_start_ms = t.queue_ms + t.plan_ms + t.cache_ms
        first_ms = t.first_token_ms or gen_start_ms
        n = c.completion_tokens
        return cls(
            ttft_s=first_ms / 1e3,
            tpot_s=max(0.0, gen_start_ms + t.generate_ms - first_ms) / 1e3 / (n - 1) if n > 1 else 0.0,
            total_s=t.total_ms / 1e3, prompt_tokens=c.prompt_tokens, output_tokens=n,
            decode_steps=max(0, n - c.forced_tokens), forced_tokens=c.forced_tokens,
            grammar_s=t.plan_ms / 1e3,
        )


@dataclass
class GenerationResult:
    """One request's outcome: text, diagnostics against its plan, timings, or an error."""

    target_path: str
    text: str
    constrained: bool
    diagnostics: list[DiagnosticInfo] = field(default_factory=list)
    finish_reason: str = ""
    error: AgenticError | None = None
    timings: GenerationTimings | None = None
    node_count: int = 0

    @property
    def errors(self) -> list[DiagnosticInfo]:
        """Error-severity diagnostics."""
        return [d for d in self.diagnostics if d.is_error]

    @property
    def valid(self) -> bool:
        """The text parses and validates against the plan with zero errors."""
        return self.error is None and not self.errors

    def to_json(self) -> dict[str, Any]:
        """JSON-ready result (what ``agentic-llm generate --json`` prints)."""
        return {
            "target_path": self.target_path, "valid": self.valid, "constrained": self.constrained,
            "finish_reason": self.finish_reason, "node_count": self.node_count, "text": self.text,
            "diagnostics": [asdict(d) for d in self.diagnostics],
            "error": None if self.error is None else {
                "code": self.error.code.value, "message": self.error.message},
            "timings": None if self.timings is None else self.timings.to_json(),
        }


class LocalGenerator:
    """The serving pipeline over one checkpoint, for offline use.

    Args:
        model_dir: the checkpoint (default: ``agentic_llm.models.default_model_dir()``).
        constrained: decode under the plan's grammar (False: free decoding, still
            validated).
        jump_forward: append grammar-forced text without a decode step each.
        max_num_seqs: engine batch limit (and admission concurrency).
        num_blocks: KV pages (None: the engine's default memory budget).
        chat_template: frame prompts in the model's chat template when it has one.
        device: where the model runs (``cpu``, ``cuda``).
    """

    def __init__(self, model_dir: str | Path | None = None, *, constrained: bool = True,
                 jump_forward: bool = True, max_num_seqs: int = 64,
                 num_blocks: int | None = None, chat_template: bool = True, device: str = "cpu") -> None:
        from agentic_llm.config import ServerConfig
        from agentic_llm.engine.loader import is_checkpoint
        from agentic_llm.models import default_model_dir
        from agentic_llm.serving.build import build_pipeline

        path = Path(model_dir) if model_dir is not None else default_model_dir()
        if not is_checkpoint(path):
            raise AgenticError(ErrorCode.MODEL_NOT_FOUND,
                               f"{path} is not a checkpoint (no config.json, no .gguf file); pass a "
                               "checkpoint with --model or AGENTIC_MODEL_DIR", path=str(path))
        model: dict[str, Any] = {"dir": str(path), "chat_template": chat_template, "device": device}
        if num_blocks is not None:
            model["num_blocks"] = num_blocks
        cfg = ServerConfig.from_dict({
            "model": model, "cache": {"store": "memory"},
            "limits": {"max_concurrent": max(1, max_num_seqs), "max_queue": 4096},
        })
        self.model_dir = path
        self.constrained = constrained
        self.max_num_seqs = max(1, max_num_seqs)
        self.pipeline = build_pipeline(cfg, cache=False, constrained=constrained,
                                       jump_forward=jump_forward)
        self.pipeline.default_timeout_sec = 3600.0  # offline: no caller is waiting

    def generate(self, requests: Sequence[Any], *, honour_timeouts: bool = True) -> list[GenerationResult]:
        """Run ``requests`` (``GenerateRequest`` or request JSON) together; results in order.

        ``honour_timeouts=False`` drops ``budget.timeout_sec`` (offline evaluation of
        many queued requests, where the queueing time is not the request's). A request
        the pipeline refuses gets a result with its error; the others still run.
        """
        with ThreadPoolExecutor(max_workers=min(len(requests), self.max_num_seqs) or 1,
                                thread_name_prefix="agentic-local") as pool:
            return list(pool.map(lambda r: self._one(r, honour_timeouts), requests))

    def _one(self, raw: Any, honour_timeouts: bool) -> GenerationResult:
        from agentic_llm.planner import GenerateRequest

        target = str(getattr(raw, "target_path", "") or (raw.get("target_path", "") if isinstance(raw, dict) else ""))
        try:
            req = raw if isinstance(raw, GenerateRequest) else GenerateRequest.from_json(raw)
            if not honour_timeouts:  # the pipeline's default (an hour) applies instead
                req = replace(req, budget=replace(req.budget, timeout_sec=0.0))
            r = self.pipeline.run(req)
        except AgenticError as exc:
            return GenerationResult(target, "", self.constrained, error=exc, finish_reason="error")
        return GenerationResult(
            target_path=r.target_path, text=r.text, constrained=self.constrained,
            diagnostics=list(r.diagnostics), finish_reason=r.finish_reason,
            timings=GenerationTimings.of(r), node_count=r.counts.node_count)

    def close(self) -> None:
        self.pipeline.close()
