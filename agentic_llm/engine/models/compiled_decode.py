"""An optional compiled decode step (``torch.compile`` with the inductor backend).

Inductor fuses each layer's elementwise work (norms, RoPE, SiLU, residuals, the
attention softmax) into a few generated C++ loops, so a decode step of a small model
runs far fewer kernels and far less Python than eager mode. It needs a C++ compiler;
without one (or if compiling fails for any reason) the engine keeps its eager decode
path, with one warning.

The compiled function never writes the KV pool or the workspace (inductor would
copy a mutated input whole): attention reads the workspace's earlier K/V and merges
the new token's own key and value into the softmax, and the function returns every
layer's new K/V, which the caller writes with one copy into the pool and one into the
workspace for all layers. Row count and key length are dynamic dimensions, so the
step compiles once per engine (a few seconds to a minute; see ``compile_seconds``).
Logits match the eager path within float rounding, not bit for bit.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from agentic_llm.engine.config import ModelConfig
    from agentic_llm.engine.models.fast_decode import LayerWeights

__all__ = ["CompiledDecode", "compiler_available"]

log = logging.getLogger(__name__)


def compiler_available(device: torch.device) -> tuple[bool, str]:
    """Whether inductor can build kernels for ``device`` here; the reason when not."""
    if device.type == "cpu":
        try:
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


def _norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    # the arithmetic of RMSNorm.forward
    if x.dtype == torch.float32 and w.dtype == torch.float32:
        return F.rms_norm(x, (x.shape[-1],), w, eps)
    return w * F.rms_norm(x.float(), (x.shape[-1],), None, eps).to(x.dtype)


def _decode_fn(cfg: ModelConfig, has_qk_norm: bool) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    heads, kvh, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    eps, layers = cfg.rms_norm_eps, cfg.num_hidden_layers
    groups, half, scale = heads // kvh, d // 2, d**-0.5
    per_layer = 13 if has_qk_norm else 11

    def decode(
        h: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_ws: torch.Tensor,
        weights: list[Any],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``h`` ``[R, D]`` embedded tokens at positions ``pos``; ``kv_ws`` the workspace
        ``[L, 2 * kv_heads, R, K, d]`` holding every earlier position. Returns logits
        ``[R, V]`` (float32) and the new K/V ``[L, 2 * kv_heads, R, d]``."""
        rows = h.shape[0]
        kpos = torch.arange(kv_ws.shape[3], device=h.device)
        # earlier positions only: the new token is merged into the softmax below
        bias = torch.where(kpos[None, :] < pos[:, None], 0.0, float("-inf")).to(h.dtype)[None, :, None, :]
        new_kv = []
        for i in range(layers):
            w = weights[i * per_layer : (i + 1) * per_layer]
            ln1, qkv_w, qkv_b, o_w, o_b, ln2, gu_w, gu_b, down_w, down_b = w[:10]
            qkv = F.linear(_norm(h, ln1, eps), qkv_w, qkv_b).view(rows, heads + 2 * kvh, d)
            q, k, v = qkv[:, :heads], qkv[:, heads : heads + kvh], qkv[:, heads + kvh :]
            if has_qk_norm:
                q, k = _norm(q, w[11], eps), _norm(k, w[12], eps)
            q = q * cos + torch.roll(q, half, dims=-1) * sin
            k = k * cos + torch.roll(k, half, dims=-1) * sin
            kv = torch.cat((k, v), dim=1).transpose(0, 1)  # [2 * kv_heads, R, d]
            new_kv.append(kv)
            qg = q.reshape(rows, kvh, groups, d).transpose(0, 1)  # [kv_heads, R, groups, d]
            s_old = torch.matmul(qg, kv_ws[i, :kvh].transpose(-1, -2)) * scale + bias
            s_new = (qg * kv[:kvh, :, None, :]).sum(-1) * scale
            top = torch.maximum(s_old.amax(-1), s_new)
            p_old = torch.exp(s_old - top[..., None])
            p_new = torch.exp(s_new - top)
            out = torch.matmul(p_old, kv_ws[i, kvh:]) + p_new[..., None] * kv[kvh:, :, None, :]
            out = out / (p_old.sum(-1) + p_new)[..., None]
            h = h + F.linear(out.transpose(0, 1).reshape(rows, heads * d), o_w, o_b)
            gu = F.linear(_norm(h, ln2, eps), gu_w, gu_b)
            inter = gu.shape[-1] // 2
            h = h + F.linear(F.silu(gu[:, :inter]) * gu[:, inter:], down_w, down_b)
        norm_w, head_w, head_b = weights[layers * per_layer :]
        logits = F.linear(_norm(h, norm_w, eps), head_w, head_b).float()
        return logits, torch.stack(new_kv)

    return decode


class CompiledDecode:
    """The compiled decode step of one model, compiled at its first use.

    Args:
        cfg: the model's architecture.
        device: where the model runs.
        cpp_wrapper: generate the graph's driver in C++ too (inductor ``cpp_wrapper``,
            CPU): fewer Python calls per step, and the whole step runs without the
            GIL, so a constraint mask filled on the worker thread overlaps it. Costs
            a longer compile.

    Attributes:
        compile_seconds: time the first call spent compiling (0 before it).
        failed: why compiling is off (empty while it works or has not been tried).
        num_steps: steps computed by the compiled function.
    """

    #: rows below this run eagerly (a size-1 dimension would be specialised)
    MIN_ROWS = 2

    def __init__(self, cfg: ModelConfig, device: torch.device, cpp_wrapper: bool = True) -> None:
        self.cfg = cfg
        self.device = device
        self.compile_seconds = 0.0
        self.failed = ""
        self.num_steps = 0
        self.cpp_wrapper = cpp_wrapper
        self._fn: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None
        ok, why = compiler_available(device)
        if not ok:
            self._give_up(why)

    @property
    def active(self) -> bool:
        """True while the compiled path is usable."""
        return not self.failed

    def _give_up(self, why: str) -> None:
        self.failed = why
        warnings.warn(f"compiled decode is off, the eager decode path runs instead: {why}", RuntimeWarning,
                      stacklevel=3)

    @staticmethod
    def flat_weights(layers: list[LayerWeights], norm_w: torch.Tensor, head_w: torch.Tensor,
                     head_b: torch.Tensor | None) -> list[Any]:
        """The function's weight list (rebuilt by the caller when parameters change)."""
        out: list[Any] = []
        for w in layers:
            out += [w.ln1.weight, w.qkv, w.qkv_bias, w.o, w.o_bias, w.ln2.weight, w.gate_up, w.gate_up_bias,
                    w.down, w.down_bias, None]
            if w.q_norm is not None and w.k_norm is not None:
                out += [w.q_norm.weight, w.k_norm.weight]
        return [*out, norm_w, head_w, head_b]

    def run(
        self, h: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_ws: torch.Tensor,
        weights: list[Any], has_qk_norm: bool,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Logits and new K/V (see the module docstring); None if compiling failed."""
        if self.failed:
            return None
        fn = self._fn
        if fn is None:
            t0 = time.perf_counter()
            try:
                fn = torch.compile(_decode_fn(self.cfg, has_qk_norm), fullgraph=True, dynamic=False,
                                   options={"cpp_wrapper": self.cpp_wrapper and self.device.type == "cpu"})
                # rows and key length vary from step to step: one graph for all of them
                for t in (h, pos, cos, sin):
                    torch._dynamo.mark_dynamic(t, 0)
                torch._dynamo.mark_dynamic(kv_ws, 2)
                torch._dynamo.mark_dynamic(kv_ws, 3)
                out = fn(h, pos, cos, sin, kv_ws, weights)
            except Exception as exc:  # no working compiler, an unsupported op: stay eager
                self._give_up(f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                return None
            self.compile_seconds = time.perf_counter() - t0
            log.info("compiled decode step in %.1f s", self.compile_seconds)
            self._fn = fn
            self.num_steps += 1
            return out
        self.num_steps += 1
        return fn(h, pos, cos, sin, kv_ws, weights)
