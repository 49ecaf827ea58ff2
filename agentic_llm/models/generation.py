"""Request in, validated subgraph out: plan, prompt, grammar, engine, validator.

:class:`SubgraphGenerator` is the shortest path from a generate_subgraph request to
a checked AgenticDSL block on one checkpoint (the shipped one by default). The CLI's
``generate`` command, the validity evaluation and the engine benchmark use it; the
server runs the fuller pipeline in ``agentic_llm.serving`` (caches, admission).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["Timings", "GenerationResult", "SubgraphGenerator"]


@dataclass(frozen=True)
class Timings:
    """Where the time of one generation went.

    Attributes:
        ttft_s: arrival to first output token.
        tpot_s: mean time per output token after the first.
        total_s: arrival to finish.
        prompt_tokens: prompt length in tokens.
        output_tokens: tokens in the output (sampled plus jump-forward).
        decode_steps: tokens the model sampled (one forward step each).
        forced_tokens: tokens appended by jump-forward without a step of their own.
        grammar_s: time to plan and build the grammar matcher (before arrival).
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
        """JSON-ready figures (seconds, counts, tokens/s)."""
        return {
            "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "total_s": self.total_s,
            "tokens_per_s": self.tokens_per_s, "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens, "decode_steps": self.decode_steps,
            "jump_forward_tokens": self.forced_tokens, "grammar_s": self.grammar_s,
        }


@dataclass
class GenerationResult:
    """One request's outcome: the text, its diagnostics against the plan, timings.

    ``error`` is set when the request could not be planned or the engine ended it
    with an error; ``diagnostics`` then stays empty and ``valid`` is False.
    """

    target_path: str
    text: str
    constrained: bool
    diagnostics: list[Any] = field(default_factory=list)
    finish_reason: str = ""
    error: AgenticError | None = None
    timings: Timings | None = None
    node_count: int = 0

    @property
    def errors(self) -> list[Any]:
        """Error-severity diagnostics."""
        return [d for d in self.diagnostics if d.is_error]

    @property
    def valid(self) -> bool:
        """The text parses and validates against the plan with zero errors."""
        return self.error is None and not self.errors

    def to_json(self) -> dict[str, Any]:
        """JSON-ready result (what ``agentic-llm generate --json`` prints)."""
        return {
            "target_path": self.target_path,
            "valid": self.valid,
            "constrained": self.constrained,
            "finish_reason": self.finish_reason,
            "node_count": self.node_count,
            "text": self.text,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "error": None if self.error is None else {
                "code": self.error.code.value, "message": self.error.message},
            "timings": None if self.timings is None else self.timings.to_json(),
        }


def _timings(out: Any, grammar_s: float) -> Timings:
    m = out.metrics
    n = len(out.output_token_ids)
    end = m.finish_time if m.finish_time is not None else time.monotonic()
    first = m.first_token_time if m.first_token_time is not None else end
    return Timings(
        ttft_s=max(0.0, first - m.arrival_time),
        tpot_s=(end - first) / (n - 1) if n > 1 else 0.0,
        total_s=max(0.0, end - m.arrival_time),
        prompt_tokens=len(out.prompt_token_ids),
        output_tokens=n,
        decode_steps=m.num_decode_steps,
        forced_tokens=m.num_forced_tokens,
        grammar_s=grammar_s,
    )


class SubgraphGenerator:
    """An engine and a grammar compiler over one checkpoint.

    Args:
        engine: an ``agentic_llm.engine.LLMEngine``.
        compiler: an ``agentic_llm.grammar.GrammarCompiler`` for the engine's tokenizer.
    """

    def __init__(self, engine: Any, compiler: Any, *, chat_template: bool = True) -> None:
        from agentic_llm.planner.chat import ChatTemplate

        self.engine = engine
        self.compiler = compiler
        self.chat = ChatTemplate.from_engine(engine) if chat_template else None

    @classmethod
    def from_model_dir(cls, model_dir: str | Path | None = None, *, max_num_seqs: int = 64,
                       **engine_options: Any) -> SubgraphGenerator:
        """Load ``model_dir`` (default: :func:`agentic_llm.models.default_model_dir`).

        Raises:
            AgenticError: ERR_MODEL_NOT_FOUND / ERR_UNSUPPORTED_MODEL from the loader.
        """
        import torch

        from agentic_llm.engine import LLMEngine
        from agentic_llm.engine.loader import is_checkpoint
        from agentic_llm.grammar import GrammarCompiler, TokenizerInfo
        from agentic_llm.models import default_model_dir

        path = Path(model_dir) if model_dir is not None else default_model_dir()
        if not is_checkpoint(path):
            raise AgenticError(ErrorCode.MODEL_NOT_FOUND,
                               f"{path} is not a model (no config.json, no .gguf file); pass a "
                               "checkpoint directory or GGUF file with --model or AGENTIC_MODEL_DIR",
                               path=str(path))
        engine = LLMEngine.from_pretrained(path, device="cpu", dtype=torch.float32,
                                           max_num_seqs=max_num_seqs, **engine_options)
        if engine.tokenizer is None:
            raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"{path} ships no tokenizer", path=str(path))
        info = TokenizerInfo.from_tokenizer(engine.tokenizer, vocab_size=engine.model_config.vocab_size,
                                            name=str(path))
        return cls(engine, GrammarCompiler(info))

    def _output_limit(self, p: Any, max_tokens: int) -> int:
        """``max_tokens``, or what the context window leaves after the prompt if less."""
        tok = self.engine.tokenizer
        max_len = self.engine.max_model_len
        if tok is None or not max_len:
            return max_tokens
        return max(0, min(max_tokens, max_len - len(tok.encode(p.render_prompt()).ids)))

    def generate(self, requests: Sequence[Any], *, constrained: bool = True,
                 jump_forward: bool = True, max_tokens: int | None = None,
                 honour_timeouts: bool = True) -> list[GenerationResult]:
        """Generate a subgraph for each request (``GenerateRequest`` or request JSON), batched.

        ``max_tokens`` overrides each request's ``budget.max_tokens``;
        ``honour_timeouts=False`` ignores ``budget.timeout_sec`` (offline evaluation of
        many queued requests, where the queueing time is not the request's). A request that
        cannot be planned gets a result with its ``PlanRefusal`` as ``error``; the
        others still run.
        """
        from agentic_llm import dsl
        from agentic_llm.engine import SamplingParams
        from agentic_llm.planner import GenerateRequest, plan

        results: list[GenerationResult | None] = [None] * len(requests)
        prompts, params, matchers, index, plans, grammar_times = [], [], [], [], [], []
        for i, raw in enumerate(requests):
            t0 = time.perf_counter()
            try:
                req = raw if isinstance(raw, GenerateRequest) else GenerateRequest.from_json(raw)
                p = plan(req)
                limit = self._output_limit(p, max_tokens or p.max_tokens)
                matcher = self.compiler.matcher_for(p, max_tokens=limit) if constrained else None
                if matcher is not None and matcher.min_tokens() > limit:
                    raise AgenticError(
                        ErrorCode.BUDGET_EXCEEDED,
                        f"no valid subgraph fits {limit} output tokens (the smallest takes "
                        f"{matcher.min_tokens()})", max_tokens=limit, min_tokens=matcher.min_tokens())
            except AgenticError as exc:
                target = getattr(raw, "target_path", None) or (raw.get("target_path", "") if isinstance(raw, dict) else "")
                results[i] = GenerationResult(str(target), "", constrained, error=exc, finish_reason="error")
                continue
            s = req.sampling
            params.append(SamplingParams(
                max_tokens=limit, temperature=s.temperature, top_k=s.top_k,
                top_p=s.top_p, seed=s.seed, jump_forward=jump_forward,
                timeout_s=float(req.budget.timeout_sec) if honour_timeouts and req.budget.timeout_sec else None))
            prompts.append(p.render_prompt(self.chat))
            matchers.append(matcher)
            plans.append(p)
            index.append(i)
            grammar_times.append(time.perf_counter() - t0)
        outs = self.engine.generate(prompts, params, matchers) if prompts else []
        for i, p, out, m, gt in zip(index, plans, outs, matchers, grammar_times, strict=True):
            text = out.text or ""
            diags = [] if out.error is not None else dsl.check_text(text, p.validation_policy())
            results[i] = GenerationResult(
                target_path=p.target_path, text=text, constrained=constrained, diagnostics=diags,
                finish_reason=str(out.finish_reason.value if out.finish_reason else ""),
                error=out.error, timings=_timings(out, gt),
                node_count=m.node_count if m is not None else _count_nodes(text))
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Stop the engine's worker thread."""
        self.engine.close()


def _count_nodes(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("  - id: "))
