"""An optional compiled decode step (``torch.export`` + AOTInductor).

Inductor fuses each layer's elementwise work (norms, RoPE, SiLU, residuals, the
attention softmax) into a few generated C++ loops, and AOTInductor drives the whole
step from C++: a decode step of a small model then runs far fewer kernels, no
per-op Python and no guard checks. On the CPU the step is called through the
library's C interface with the GIL released (see ``aoti_runner``), so a constraint
mask filled on the worker thread overlaps it. It needs a C++ compiler; without one (or if
compiling fails for any reason) the engine keeps its eager decode path, with one
warning.

The compiled function never writes the KV pool or the workspace (a compiled graph
would copy a mutated input whole): attention reads the workspace's earlier K/V
(every slot of its capacity, the later ones masked) and merges the new token's own
key and value into the softmax, and the function returns every layer's new K/V,
which the caller writes with one copy into the pool and one into the workspace for
all layers. Rows and workspace capacity are dynamic dimensions, so the step compiles
once per engine (tens of seconds; see ``compile_seconds``). The compiled code reads
its inputs with the strides seen at export, so every call checks them first. Logits
match the eager path within float rounding, not bit for bit.

With a :class:`~agentic_llm.engine.models.compile_cache.PackageCache` the package is
kept on disk and the next engine start of the same model, torch and machine loads it
instead of compiling (about a second); a loaded package must agree with the eager
step on its first call (within float rounding) or it is discarded and compiled anew.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from agentic_llm.engine.models.aoti_runner import GilFreeRunner, flat_inputs, load_gil_free
from agentic_llm.engine.models.compile_cache import CacheKey, PackageCache, code_digest, vector_isa
from agentic_llm.engine.models.decoder_step import (
    LayerShape,
    LayerStep,
    LayerWeights,
    ModelWeights,
    decoder_layer,
    final_logits,
)

if TYPE_CHECKING:
    from agentic_llm.engine.config import ModelConfig

__all__ = ["CompiledDecode", "compiler_available", "load_tolerance"]

log = logging.getLogger(__name__)


def compiler_available(device: torch.device) -> tuple[bool, str]:
    """Whether inductor can build kernels for ``device`` here; the reason when not."""
    if device.type == "cpu":
        try:
            # torch has no public "is a compiler there" check; this is the lookup
            # inductor itself runs before building, so its answer is the one that counts
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()
        except Exception as exc:  # inductor raises its own error types for a missing compiler
            return False, f"no C++ compiler for inductor ({type(exc).__name__}: {exc})"
        return True, ""
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False, "triton is not installed"
        return True, ""
    return False, f"no compiled decode for device type {device.type!r}"


def _decode_fn(cfg: ModelConfig, flash_cpu: bool) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    shape = LayerShape.of(cfg)
    heads, kvh, d = shape.heads, shape.kv_heads, shape.head_dim
    layers, per_layer = cfg.num_hidden_layers, len(LayerWeights._fields)
    groups, scale = heads // kvh, shape.scale

    def decode(
        h: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_ws: torch.Tensor,
        weights: list[Any],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``h`` ``[R, D]`` embedded tokens at positions ``pos``; ``kv_ws`` the workspace
        ``[L, 2 * kv_heads, R, K, d]`` holding every earlier position (later slots are
        masked by ``pos``). Returns logits
        ``[R, V]`` (float32) and the new K/V ``[L, 2 * kv_heads, R, d]``."""
        rows = h.shape[0]
        kpos = torch.arange(kv_ws.shape[3], device=h.device)
        # earlier positions only: the new token is merged into the softmax below
        bias = torch.where(kpos[None, :] < pos[:, None], 0.0, float("-inf")).to(h.dtype)[None, :, None, :]
        has_old = (pos > 0)[None, :, None]  # a row at position 0 has no earlier key
        new_kv: list[torch.Tensor] = []

        def attend(i: int, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
            """Softmax attention over the earlier keys plus the new one; the new K/V are
            collected (returned), not written."""
            kv = kv.transpose(0, 1)  # [2 * kv_heads, R, d]
            new_kv.append(kv)
            qg = q.reshape(rows, kvh, groups, d).transpose(0, 1)  # [kv_heads, R, groups, d]
            k_old, v_old = kv_ws[i, :kvh], kv_ws[i, kvh:]
            k_new, v_new = kv[:kvh, :, None, :], kv[kvh:, :, None, :]
            s_new = (qg * k_new).sum(-1) * scale  # [kv_heads, R, groups]
            if flash_cpu:
                # the fused CPU kernel over the earlier keys (several times faster than
                # two batched matmuls at these sizes) and its log-sum-exp to merge with
                o_old, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                    qg, k_old, v_old, 0.0, False, attn_mask=bias, scale=scale)[:2]
                lse = torch.where(has_old, lse.to(s_new.dtype), float("-inf"))
                top = torch.maximum(lse, s_new)
                w_old, w_new = torch.exp(lse - top), torch.exp(s_new - top)
                o_old = torch.where(has_old[..., None], o_old * w_old[..., None], 0.0)
                o = (o_old + w_new[..., None] * v_new) / (w_old + w_new)[..., None]
            else:
                s_old = torch.matmul(qg, k_old.transpose(-1, -2)) * scale + bias
                top = torch.maximum(s_old.amax(-1), s_new)
                p_old = torch.exp(s_old - top[..., None])
                p_new = torch.exp(s_new - top)
                o = (torch.matmul(p_old, v_old) + p_new[..., None] * v_new) / (p_old.sum(-1) + p_new)[..., None]
            return o.transpose(0, 1)  # [R, kv_heads, groups, d]

        # functional ops only: an in-place op on a graph tensor would be copied whole
        step = LayerStep(shape, cos, sin, attend, in_place=False)
        for i in range(layers):
            w = LayerWeights(*weights[i * per_layer : (i + 1) * per_layer])
            h = decoder_layer(h, w, i, step)
        norm_w, head_w, head_b = weights[layers * per_layer :]
        return final_logits(h, norm_w, head_w, head_b, shape.eps), torch.stack(new_kv)

    return decode


class CompiledDecode:
    """The compiled decode step of one model, compiled at its first use.

    Args:
        cfg: the model's architecture.
        device: where the model runs.
        cache: where compiled packages are kept across engine starts (None: nowhere).
        model_key: the checkpoint's fingerprint, the first part of the cache key.

    Attributes:
        compile_seconds: time the first call spent compiling, or loading the package
            from the cache (0 before it).
        cache_hit: whether the package came from the cache.
        cache_path: the package in the cache (None without a cache or before the
            first call).
        failed: why compiling is off (empty while it works or has not been tried).
        num_steps: steps computed by the compiled function.
    """

    #: rows below this run eagerly (a size-1 dimension would be specialised)
    MIN_ROWS = 2

    def __init__(self, cfg: ModelConfig, device: torch.device, *, cache: PackageCache | None = None,
                 model_key: str = "") -> None:
        self.cfg = cfg
        self.device = device
        self.cache = cache
        self.model_key = model_key
        self.compile_seconds = 0.0
        self.cache_hit = False
        self.cache_path: Path | None = None
        self.failed = ""
        self.num_steps = 0
        self._runner: GilFreeRunner | None = None
        self._pinned_for: list[Any] | None = None
        self._flat_weights: list[torch.Tensor] = []  # the tensors of _pinned_for, in call order
        self._fn: Callable[..., Any] | None = None
        self._weight_sig: list[tuple[Any, ...] | None] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        ok, why = compiler_available(device)
        if not ok:
            self._give_up(why)

    @property
    def gil_free(self) -> bool:
        """Whether the compiled step runs with the GIL released (CPU, through
        :mod:`~agentic_llm.engine.models.aoti_runner`)."""
        return self._runner is not None

    @property
    def active(self) -> bool:
        """True while the compiled path is usable."""
        return not self.failed

    def _give_up(self, why: str) -> None:
        self.failed = why
        warnings.warn(f"compiled decode is off, the eager decode path runs instead: {why}", RuntimeWarning,
                      stacklevel=3)

    @staticmethod
    def flat_weights(weights: ModelWeights) -> list[Any]:
        """The function's weight list: each layer's :class:`LayerWeights` fields in order,
        then the final norm and the head (rebuilt by the caller when parameters change).
        Needs fused projections (``weights.fused``)."""
        out: list[Any] = [t for w in weights.layers for t in w]
        return [*out, weights.norm, weights.head, weights.head_bias]

    def weights_ok(self, weights: list[Any]) -> bool:
        """Whether ``weights`` have the shapes, strides and dtypes the step was compiled
        for (always True before compiling); compiling is given up when not."""
        if self._weight_sig is None or self._weight_sig == _signature(weights):
            return True
        self._give_up("a parameter changed shape, layout or dtype after compiling")
        return False

    def run(
        self, h: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_ws: torch.Tensor,
        weights: list[Any], before: Callable[[], int | None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Logits and new K/V (see the module docstring); None when the step cannot run
        compiled (the caller runs the eager step).

        ``kv_ws`` is the whole workspace ``[L, 2 * kv_heads, R, capacity, d]``.
        ``before`` is called right before a call that releases the GIL (see
        ``GilFreeRunner``: it may return a counter for the call to bump).
        """
        if self.failed:
            return None
        acts = (h, pos, cos, sin, kv_ws)
        if not all(t.is_contiguous() for t in acts) or h.shape[0] < self.MIN_ROWS:
            return None
        fn = self._fn
        if fn is None:
            fn = self._compile(acts, weights)
            if fn is None:
                return None
        self.num_steps += 1
        if self._runner is not None:
            if weights is not self._pinned_for:
                self._flat_weights = flat_inputs((weights,))
                self._runner.pin(self._flat_weights)
                self._pinned_for = weights
            out = self._runner([h, pos, cos, sin, kv_ws, *self._flat_weights], before)
        else:
            out = fn(h, pos, cos, sin, kv_ws, weights)
        return out[0], out[1]

    def _compile(self, acts: tuple[torch.Tensor, ...], weights: list[Any]) -> Callable[..., Any] | None:
        t0 = time.perf_counter()
        flash = self.device.type == "cpu"
        fn = _decode_fn(self.cfg, flash)

        # export traces outside inference mode: clones (same strides) of the inputs
        def own(x: Any) -> Any:
            return x.clone() if isinstance(x, torch.Tensor) else x

        example = (*(own(a) for a in acts), [own(w) for w in weights])
        self._dir = tempfile.TemporaryDirectory(prefix="agentic-decode-")
        key = self._key(acts, weights, flash) if self.cache is not None else None
        compiled: Callable[..., Any] | None = None
        path: Path | None = None
        if key is not None and self.cache is not None and (cached := self.cache.lookup(key)) is not None:
            compiled = _load_checked(cached, fn, example)
            if compiled is None:
                self.cache.discard(key)
            else:
                path, self.cache_hit, self.cache_path = cached, True, cached
        if compiled is None:
            try:
                path = self._export_and_package(fn, example, weights)
                compiled = torch._inductor.aoti_load_package(str(path))
            except Exception as exc:  # no working compiler, an unsupported op: stay eager
                self._give_up(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                return None
            if key is not None and self.cache is not None:
                self.cache_path = self.cache.store(key, path)
        assert path is not None
        if self.device.type == "cpu":
            self._runner = self._gil_free_runner(compiled, path, example)
        self.compile_seconds = time.perf_counter() - t0
        log.info("compiled decode step %s in %.1f s", "loaded from the cache" if self.cache_hit else "compiled",
                 self.compile_seconds)
        self._weight_sig = _signature(weights)
        self._fn = compiled
        return compiled

    def _export_and_package(self, fn: Callable[..., Any], example: tuple[Any, ...], weights: list[Any]) -> Path:
        """Export the step and build its AOTInductor package in the engine's temporary
        folder; the package's path."""
        from torch.export import Dim, export

        class _Step(torch.nn.Module):
            def forward(self, h: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                        kv_ws: torch.Tensor, weights: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
                return fn(h, pos, cos, sin, kv_ws, weights)

        rows = Dim("rows", min=self.MIN_ROWS, max=1 << 16)
        cap = Dim("capacity", min=2, max=1 << 24)
        dims = ({0: rows}, {0: rows}, {0: rows}, {0: rows}, {2: rows, 3: cap}, [None] * len(weights))
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch-internal deprecations
            program = export(_Step(), example, dynamic_shapes=dims, strict=False)
        assert self._dir is not None
        # torch._inductor.aoti_* are the entry points torch's AOTInductor docs give
        # (there is no torch.* alias for them)
        return Path(torch._inductor.aoti_compile_and_package(
            program, package_path=str(Path(self._dir.name) / "decode.pt2")))

    def _key(self, acts: tuple[torch.Tensor, ...], weights: list[Any], flash: bool) -> CacheKey:
        """The cache key of the step compiled for these inputs (dynamic sizes left out)."""
        dynamic = ((0,), (0,), (0,), (0,), (2, 3))
        inputs = [(str(a.dtype), tuple(-1 if j in dyn else n for j, n in enumerate(a.shape)))
                  for a, dyn in zip(acts, dynamic, strict=True)]
        return CacheKey.build(self.model_key, {
            "code": code_digest(), "config": repr(self.cfg), "device": self.device.type,
            "isa": vector_isa(self.device), "flash_cpu": flash, "inputs": inputs,
            "weights": _signature(weights), "min_rows": self.MIN_ROWS,
        })

    def _gil_free_runner(self, loaded: Callable[..., Any], package: Path,
                         example: tuple[Any, ...]) -> GilFreeRunner | None:
        """The package's GIL-free runner when it loads and gives exactly the loader's
        outputs on ``example``; else None (the loader runs the step)."""
        assert self._dir is not None
        runner = load_gil_free(package, Path(self._dir.name))
        if runner is None:
            return None
        try:
            want = loaded(*example)
            got = runner(flat_inputs(example))
            same = len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
        except Exception as exc:  # an input layout the C path does not take: keep the loader
            log.info("compiled decode keeps the loader: %s", exc)
            same = False
        if not same:
            log.info("compiled decode keeps the loader: its C interface gave different outputs")
            runner.close()
            return None
        return runner


def load_tolerance(example: tuple[Any, ...]) -> float:
    """How far a loaded package's outputs on ``example`` (activations, then the weight
    list) may be from the eager step's: float rounding of the narrowest operand. bf16
    weights (``weight_dtype``) under float32 activations round like a bf16 step,
    however inductor fuses their casts."""
    narrow = example[0].dtype != torch.float32 or any(
        w is not None and w.is_floating_point() and w.dtype != torch.float32 for w in example[-1])
    return 5e-2 if narrow else 1e-3


def _load_checked(path: Path, fn: Callable[..., Any], example: tuple[Any, ...]) -> Callable[..., Any] | None:
    """The package at ``path``, loaded, when its outputs on ``example`` match the eager
    step ``fn`` within float rounding; None (logged) when it fails to load or differs."""
    try:
        loaded = torch._inductor.aoti_load_package(str(path))
        got = loaded(*example)
        with torch.no_grad():
            want = fn(*example)
        tol = load_tolerance(example)
        if len(got) != len(want) or not all(
                a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=tol, atol=tol)
                for a, b in zip(got, want, strict=True)):
            log.warning("compiled decode: the cached package %s disagrees with the eager step; compiling anew",
                        path)
            return None
    except Exception as exc:  # a truncated or foreign file: compile anew
        log.warning("compiled decode: cannot use the cached package %s (%s); compiling anew",
                    path, f"{type(exc).__name__}: {exc}".splitlines()[0][:200])
        return None
    return loaded  # type: ignore[no-any-return]


def _signature(weights: list[Any]) -> list[tuple[Any, ...] | None]:
    return [None if w is None else (tuple(w.shape), w.stride(), w.dtype) for w in weights]
