"""The synchronous engine: add requests, call :meth:`LLMEngine.step`, read outputs."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tokenizers import Tokenizer

from agentic_llm.engine.attention import get_backend
from agentic_llm.engine.attention.workspace import SLACK
from agentic_llm.engine.constraint_state import ConstraintState
from agentic_llm.engine.constraints import TokenMatcher
from agentic_llm.engine.diagnostics import DiagnosticsConfig
from agentic_llm.engine.engine_config import EngineConfig
from agentic_llm.engine.kv.base import BlockPool
from agentic_llm.engine.kv.pool import PagedKVPool
from agentic_llm.engine.loader import LoadedModel, load_model
from agentic_llm.engine.masking import MaskFiller
from agentic_llm.engine.models.compile_cache import PackageCache
from agentic_llm.engine.models.compiled_decode import CompiledDecode
from agentic_llm.engine.native import MaskedRowMax, masked_row_max_kernel
from agentic_llm.engine.outputs import FinishReason, RequestOutput
from agentic_llm.engine.postprocess import jump_forward, stop_reason
from agentic_llm.engine.prefix import PrefixCache
from agentic_llm.engine.sampling import MaskedMax, SamplingParams, make_generator
from agentic_llm.engine.stepper import run_step
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.scheduler import HookInfo, Request, Scheduler, get_policy

if TYPE_CHECKING:
    from agentic_llm.engine.loop import StepObserver

__all__ = ["LLMEngine", "PrefixCacheArg"]

#: a prefix cache, a factory building one over the engine's pool, or None
PrefixCacheArg = PrefixCache | Callable[[BlockPool], PrefixCache] | None


class LLMEngine:
    """Continuous-batching engine over one model and one paged KV pool.

    Not thread-safe: call it from one thread (:class:`AsyncLLMEngine` wraps it in a
    loop thread for servers).
    """

    def __init__(
        self, loaded: LoadedModel, config: EngineConfig, prefix_cache: PrefixCacheArg = None
    ) -> None:
        self.config = config
        self.loaded = loaded
        self.model = loaded.model
        self.model_config = loaded.config
        self.tokenizer: Tokenizer | None = loaded.tokenizer
        self.device = torch.device(config.device)
        mc = loaded.config
        geometry = (config.block_size, mc.num_hidden_layers, mc.num_key_value_heads, mc.head_dim)
        pool_kw: dict[str, Any] = {"dtype": config.dtype, "device": self.device, "shuffle_seed": config.shuffle_seed}
        if config.num_blocks is not None:
            self.pool = PagedKVPool(config.num_blocks, *geometry, **pool_kw)
        else:
            self.pool = PagedKVPool.from_memory_budget(config.kv_memory_bytes, *geometry, **pool_kw)
        capacity = self.pool.num_blocks * self.pool.block_size
        self.max_model_len = min(config.max_model_len or mc.max_position_embeddings, mc.max_position_embeddings, capacity)
        self.backend = get_backend(config.attention_backend)
        if prefix_cache is not None and (isinstance(prefix_cache, type) or not hasattr(prefix_cache, "match")):
            prefix_cache = prefix_cache(self.pool)  # a factory over the engine's pool, e.g. RadixCache
        self.scheduler = Scheduler(
            self.pool,
            get_policy(config.scheduling_policy, config.scheduling_options),
            max_num_seqs=config.max_num_seqs,
            max_num_batched_tokens=config.max_num_batched_tokens,
            prefix_cache=prefix_cache,  # type: ignore[arg-type]
        )
        self.eos_token_ids = frozenset(loaded.eos_token_ids)
        self.model.pack_weights(_packs_wanted(config, self.model))
        compiled: CompiledDecode | None = None
        if config.compile_decode:
            cache = _compile_cache(config, loaded)
            compiled = self.model.decode_runner.compiled = CompiledDecode(
                mc, self.device, cache=cache, model_key=_model_key(loaded) if cache is not None else "")
            if hasattr(self.backend, "workspace_grow_slack"):
                # the compiled step attends over the whole workspace: little slack
                self.backend.workspace_grow_slack = SLACK
        # where masks are filled is settled here, once: ``mask_fill_overlap=None``
        # takes the worker when decode steps will release the GIL (the compiled step
        # on the CPU) and a second CPU is there for it
        gil_free = compiled is not None and compiled.active and self.device.type == "cpu"
        self.mask_filler = MaskFiller(mc.vocab_size, config.mask_fill_overlap, self.device,
                                      gil_free_forward=gil_free, spin_s=config.mask_fill_spin_ms / 1e3)
        self.masked_max = MaskedMax()  # the step's masked logits, in a buffer it reuses
        # greedy constrained rows on the CPU: picked from the packed mask in C
        kernel = masked_row_max_kernel() if self.device.type == "cpu" else None
        self.masked_row_max = MaskedRowMax(kernel) if kernel is not None else None
        self.requests: dict[str, Request] = {}
        self._pending: list[Request] = []  # finished outside a step, reported by the next
        self._seq = itertools.count()
        self.num_steps = 0
        self.num_shared_prefill_tokens = 0  # prompt tokens not computed: shared in-step

    @property
    def prefix_cache(self) -> PrefixCache | None:
        """The prefix cache in use (None when off); assigning one attaches it."""
        return self.scheduler.prefix_cache

    @prefix_cache.setter
    def prefix_cache(self, cache: PrefixCache | None) -> None:
        self.scheduler.prefix_cache = cache

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        prefix_cache: PrefixCacheArg = None,
        adapter: str | Path | None = None,
        weight_dtype: torch.dtype | None = None,
        **engine_options: Any,
    ) -> LLMEngine:
        """Load ``model_dir`` (with the LoRA ``adapter`` merged, when given; the
        projections' weights in ``weight_dtype``, when given: ``loader.load_model``)
        and build an engine; ``engine_options`` are :class:`EngineConfig` fields.

        ``prefix_cache`` is a :class:`PrefixCache` over this engine's pool, or a
        factory called with the pool (``prefix_cache=RadixCache`` works), or None.

        Raises:
            AgenticError: ERR_MODEL_NOT_FOUND / ERR_UNSUPPORTED_MODEL from the loader,
                ERR_INVALID_CONFIG for bad engine options.
        """
        try:
            config = EngineConfig(device=device, dtype=dtype, **engine_options)
        except (TypeError, ValueError) as exc:
            raise AgenticError(ErrorCode.INVALID_CONFIG, f"engine options: {exc}") from exc
        return cls(load_model(model_dir, device=device, dtype=dtype, adapter=adapter, weight_dtype=weight_dtype),
                   config, prefix_cache)

    # -- requests -------------------------------------------------------------------
    def add_request(
        self,
        prompt_token_ids: Sequence[int] | str,
        params: SamplingParams | None = None,
        matcher: TokenMatcher | None = None,
        diagnostics: DiagnosticsConfig | None = None,
        hook_info: HookInfo | dict[str, Any] | None = None,
        request_id: str | None = None,
        *,
        priority: int = 0,
        dag_id: str | None = None,
        branch_id: str | None = None,
    ) -> str:
        """Queue a request and return its id.

        A request the engine cannot serve (empty or too long prompt, token ids out of
        the vocabulary, a duplicate id) is not refused here: it is finished at once
        with an ERR_* error, reported by the next :meth:`step`, so a batch never
        loses its other requests. A string prompt is tokenized with the model's
        tokenizer.
        """
        params = params or SamplingParams()
        rid = request_id or uuid.uuid4().hex
        if isinstance(hook_info, dict):
            hook_info = HookInfo(tuple(hook_info.get("namespaces", ())), str(hook_info.get("tenant", "")))
        error: AgenticError | None = None
        if rid in self.requests:
            error = AgenticError(ErrorCode.INVALID_REQUEST, f"request id {rid!r} is already in use")
            rid = f"{rid}#{uuid.uuid4().hex[:8]}"
        ids = self._prompt_ids(prompt_token_ids) if error is None else []
        if isinstance(ids, AgenticError):
            error, ids = ids, []
        req = Request(
            request_id=rid,
            token_ids=list(ids),
            num_prompt_tokens=len(ids),
            params=params,
            generator=make_generator(params.seed, self.device),
            constraint=ConstraintState(matcher) if matcher is not None else None,
            diagnostics=diagnostics,
            hook_info=hook_info or HookInfo(),
            priority=priority,
            dag_id=dag_id,
            branch_id=branch_id,
            seq_no=next(self._seq),
        )
        if params.timeout_s is not None:
            req.deadline = req.metrics.arrival_time + params.timeout_s
        if error is None and diagnostics is not None:
            bad = [x for x in diagnostics.attention_layers if not 0 <= x < self.model_config.num_hidden_layers]
            if bad:
                error = AgenticError(ErrorCode.INVALID_REQUEST, f"diagnostics layers {bad} out of range")
        self.requests[rid] = req
        if error is not None:
            self._finish_now(req, FinishReason.ERROR, error)
            return rid
        # text the constraint forces from the start is prefilled with the prompt
        if jump_forward(req, self.tokenizer, self.max_model_len):
            reason = stop_reason(req, self.eos_token_ids, self.max_model_len)
            if reason is not None:
                self._finish_now(req, reason, None)
                return rid
        self.scheduler.add(req)
        return rid

    def _prompt_ids(self, prompt: Sequence[int] | str) -> list[int] | AgenticError:
        if isinstance(prompt, str):
            if self.tokenizer is None:
                return AgenticError(ErrorCode.INVALID_REQUEST, "text prompt given but the model has no tokenizer.json")
            prompt = self.tokenizer.encode(prompt).ids
        ids = [int(t) for t in prompt]
        if not ids:
            return AgenticError(ErrorCode.INVALID_REQUEST, "the prompt is empty")
        vocab = self.model_config.vocab_size
        bad = [t for t in ids if not 0 <= t < vocab]
        if bad:
            return AgenticError(ErrorCode.INVALID_REQUEST, f"token ids {bad[:5]} outside the vocabulary (size {vocab})")
        if len(ids) >= self.max_model_len:
            return AgenticError(
                ErrorCode.CONTEXT_TOO_LONG,
                f"prompt has {len(ids)} tokens; the context holds {self.max_model_len} "
                "(prompt plus at least one output token)",
                prompt_tokens=len(ids),
                max_model_len=self.max_model_len,
            )
        return ids

    def fork(
        self,
        request_id: str,
        params: SamplingParams | None = None,
        matcher: TokenMatcher | None = None,
        request_id_child: str | None = None,
    ) -> str:
        """Start a sibling of a live request that shares its KV pages.

        The child's prompt is the parent's tokens so far; their pages are shared
        (reference counted) and copied on the first write into a shared partial
        page. A constrained child needs its own ``matcher`` already advanced to the
        parent's state.
        """
        parent = self.requests.get(request_id)
        if parent is None or parent.is_finished:
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"no live request {request_id!r} to fork")
        params = params or parent.params
        rid = request_id_child or uuid.uuid4().hex
        if rid in self.requests:
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"request id {rid!r} is already in use")
        child = Request(
            request_id=rid,
            token_ids=list(parent.token_ids),
            num_prompt_tokens=parent.num_tokens,
            params=params,
            generator=make_generator(params.seed, self.device),
            constraint=ConstraintState(matcher) if matcher is not None else None,
            diagnostics=parent.diagnostics,
            hook_info=parent.hook_info,
            priority=parent.priority,
            dag_id=parent.dag_id,
            branch_id=parent.branch_id,
            seq_no=next(self._seq),
        )
        self.pool.incref(parent.block_table)
        child.block_table = list(parent.block_table)
        child.num_computed_tokens = parent.num_computed_tokens
        self.requests[rid] = child
        self.scheduler.add(child)
        return rid

    def abort(self, request_id: str, error: AgenticError | None = None) -> bool:
        """End a request now; False if it is unknown or already over.

        It finishes with ``error`` (ERR_CANCELLED when None); an ERR_TIMEOUT error
        gives finish reason ``timeout``, anything else ``abort``. The next
        :meth:`step` reports it.
        """
        req = self.requests.get(request_id)
        if req is None or req.is_finished:
            return False
        err = error or AgenticError(ErrorCode.CANCELLED, "request aborted")
        reason = FinishReason.TIMEOUT if err.code is ErrorCode.TIMEOUT else FinishReason.ABORT
        self._finish_now(req, reason, err)
        return True

    def _finish_now(self, req: Request, reason: FinishReason, error: AgenticError | None) -> None:
        self.scheduler.finish(req, reason, error)
        req.metrics.finish_time = time.monotonic()
        self._pending.append(req)

    # -- the loop -------------------------------------------------------------------
    def has_unfinished_requests(self) -> bool:
        return self.scheduler.has_work() or bool(self._pending)

    def step(self) -> list[RequestOutput]:
        """Run one batch step; return the outputs of requests that changed.

        Called by :class:`agentic_llm.engine.loop.EngineLoop` only: the loop owns
        deadlines (``params.timeout_s``), cancellation and step observers.
        """
        changed = run_step(self) if self.scheduler.has_work() else []
        for req in changed:
            if req.is_finished and req.metrics.finish_time is None:
                req.metrics.finish_time = time.monotonic()
        seen: set[str] = set()
        outputs: list[RequestOutput] = []
        for req in self._pending + changed:
            if req.request_id not in seen:
                seen.add(req.request_id)
                outputs.append(self._output(req))
        self._pending = []
        self.num_steps += 1
        return outputs

    def _output(self, req: Request) -> RequestOutput:
        out = req.output_token_ids
        new = out[req.sent_tokens :]
        req.sent_tokens = len(out)
        diags = req.step_diagnostics[req.sent_diagnostics :]
        req.sent_diagnostics = len(req.step_diagnostics)
        text = None
        finished = req.is_finished
        if finished:
            self.requests.pop(req.request_id, None)
            if self.tokenizer is not None:
                text = self.tokenizer.decode(out, skip_special_tokens=True)
        return RequestOutput(  # ``out`` and ``new`` are fresh lists (slices)
            request_id=req.request_id,
            prompt_token_ids=req.prompt_token_ids,
            output_token_ids=out,
            new_token_ids=new,
            finished=finished,
            finish_reason=req.finish_reason,
            error=req.error,
            metrics=req.metrics,
            text=text,
            diagnostics=diags,
        )

    def generate(
        self,
        prompts: Sequence[Sequence[int] | str],
        params: SamplingParams | Sequence[SamplingParams] | None = None,
        matchers: Sequence[TokenMatcher | None] | None = None,
        diagnostics: DiagnosticsConfig | None = None,
        *,
        observers: Sequence[StepObserver] = (),
    ) -> list[RequestOutput]:
        """Run ``prompts`` to completion together; final outputs in input order.

        Drives an :class:`~agentic_llm.engine.loop.EngineLoop` on this thread, with
        ``observers`` told about every step. Each final output carries every step's
        diagnostics. Requests already queued by :meth:`add_request` run alongside
        but are not returned.
        """
        from agentic_llm.engine.loop import EngineLoop

        n = len(prompts)
        plist = list(params) if isinstance(params, Sequence) else [params or SamplingParams()] * n
        mlist = list(matchers) if matchers is not None else [None] * n
        if len(plist) != n or len(mlist) != n:
            raise AgenticError(ErrorCode.INVALID_REQUEST, "params and matchers must match prompts in length")
        loop = EngineLoop(self, observers=observers, thread=False)
        diags: list[list[Any]] = [[] for _ in range(n)]
        final: list[RequestOutput | None] = [None] * n
        chans = []
        for i, (p, sp, m) in enumerate(zip(prompts, plist, mlist, strict=True)):
            def sink(item: Any, i: int = i) -> None:
                if item.output is not None:
                    diags[i].extend(item.output.diagnostics)
                    if item.finished:
                        final[i] = item.output
            chans.append(loop.submit(p, sp, request_id=uuid.uuid4().hex, sink=sink,
                                     matcher=m, diagnostics=diagnostics))
        loop.drain(chans)
        outs: list[RequestOutput] = []
        for i, o in enumerate(final):
            if o is None:  # pragma: no cover - the loop closes every channel with an output
                raise AgenticError(ErrorCode.INTERNAL, "a request ended without an output")
            o.diagnostics = diags[i]
            outs.append(o)
        return outs

    # -- introspection -------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Pool, queue and prefix-cache counters."""
        ps = self.pool.stats()
        pc = self.prefix_cache
        return {
            "blocks_total": ps.num_blocks,
            "blocks_free": ps.free_blocks,
            "blocks_used": ps.used_blocks,
            "blocks_shared": ps.shared_blocks,
            "block_size": self.pool.block_size,
            "running": len(self.scheduler.running),
            "waiting": len(self.scheduler.waiting),
            "preemptions": self.scheduler.num_preemptions,
            "steps": self.num_steps,
            "max_model_len": self.max_model_len,
            "prefix_queries_tokens": getattr(pc, "queries_tokens", 0) if pc else 0,
            "prefix_hit_tokens": getattr(pc, "hit_tokens", 0) if pc else 0,
            "prefix_hit_rate": (pc.hit_tokens / pc.queries_tokens) if pc and pc.queries_tokens else 0.0,
            "shared_prefill_tokens": self.num_shared_prefill_tokens,
            **self._decode_stats(),
        }

    def _decode_stats(self) -> dict[str, Any]:
        runner = self.model.decode_runner
        comp = runner.compiled
        return {
            "fast_decode_steps": runner.num_steps,
            "compiled_decode_steps": comp.num_steps if comp is not None else 0,
            "decode_compile_s": comp.compile_seconds if comp is not None else 0.0,
            "decode_compile_cache_hit": comp.cache_hit if comp is not None else False,
            "compiled_decode_off_reason": (comp.failed if comp is not None else "not requested"),
        }

    def close(self) -> None:
        """Stop the mask worker thread."""
        self.mask_filler.close()

    def __del__(self) -> None:
        filler = getattr(self, "mask_filler", None)
        if filler is not None:
            filler.close()


def _compile_cache(config: EngineConfig, loaded: LoadedModel) -> PackageCache | None:
    """The compiled decode step's package cache of ``config`` (None: none kept)."""
    from agentic_llm import envs

    if config.compile_cache_dir is not None:
        return PackageCache(config.compile_cache_dir) if config.compile_cache_dir else None
    root = envs.compile_cache_dir()
    return PackageCache(root) if root is not None else None


def _model_key(loaded: LoadedModel) -> str:
    """The loaded checkpoint's fingerprint (with its merged adapter's), for the cache key."""
    from agentic_llm.engine.fingerprint import model_fingerprint

    try:
        key = model_fingerprint(loaded.model_dir)
        return key if loaded.adapter is None else f"{key}a{model_fingerprint(loaded.adapter)[:8]}"
    except OSError:  # the checkpoint moved since it was loaded: the key still covers the shapes
        return ""


def _packs_wanted(config: EngineConfig, model: torch.nn.Module) -> bool:
    """``config.pack_weights`` resolved for ``model`` (see ``EngineConfig``)."""
    from agentic_llm.engine.models import packed

    if config.pack_weights is False or not packed.available(config.device):
        return False
    if config.pack_weights:
        return True
    size = sum(m.weight.nbytes for m in model.projection_layers())  # type: ignore[operator]
    return size <= packed.AUTO_MAX_BYTES
