"""One decoder layer's arithmetic, computed from explicit tensors.

Every path that runs a layer calls these functions: the modules of
:mod:`~agentic_llm.engine.models.decoder` (prefill, mixed steps, hooks, the pruned
last layer), the flat decode runner (:mod:`~agentic_llm.engine.models.fast_decode`)
and the exported compiled step (:mod:`~agentic_llm.engine.models.compiled_decode`).
What differs between those paths is passed in through :class:`LayerStep`:

* ``attend``: how attention stores the new K/V and reads the earlier ones (the
  paged backend, the decode workspace, or the export's merged softmax that writes
  nothing);
* ``in_place``: whether fresh intermediate tensors may be overwritten (RoPE on the
  fused projection output, SiLU and the gate product). The eager paths do it to save
  temporaries; the export keeps every op functional.

The functions hold no state and read no module: a layer is a :class:`LayerWeights`
tuple of the model's own tensors (parameters or views of them, never copies), so an
in-place weight update is seen by every path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F

from agentic_llm.engine.models.packed import packed_linear
from agentic_llm.engine.native import rms_norm_kernel

if TYPE_CHECKING:
    from agentic_llm.engine.config import ModelConfig

__all__ = [
    "Attend",
    "LayerShape",
    "LayerStep",
    "LayerWeights",
    "ModelWeights",
    "attention_inputs",
    "decoder_layer",
    "final_logits",
    "linear",
    "mlp",
    "output_projection",
    "rms_norm",
    "rotate",
]

#: ``attend(layer, q, kv)``: attention of ``q`` ``[T, heads, d]`` given the step's new
#: K/V ``kv`` ``[T, 2 * kv_heads, d]`` (K heads then V heads), which it stores as its
#: path needs. Returns a tensor with ``T'`` leading rows (``T`` or, when the caller
#: keeps some rows only, those) that reshapes to ``[T', heads * d]``.
Attend = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


class LayerShape(NamedTuple):
    """The sizes every layer of a model shares."""

    heads: int
    kv_heads: int
    head_dim: int
    eps: float  # RMSNorm epsilon

    @classmethod
    def of(cls, cfg: ModelConfig) -> LayerShape:
        return cls(cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.rms_norm_eps)

    @property
    def scale(self) -> float:
        """Attention's softmax scale."""
        return float(self.head_dim**-0.5)


class LayerWeights(NamedTuple):
    """One decoder layer's tensors.

    ``qkv`` and ``gate_up`` are one fused matrix each (q, k, v rows; gate rows then up
    rows), or, when a projection was replaced after fusing, a tuple of the separate
    weights (the biases then a tuple of the separate biases, each possibly None).
    ``q_norm``/``k_norm`` are the per-head norm weights (Qwen3), else None. The field
    order is the compiled step's per-layer input order.
    """

    ln1: torch.Tensor
    qkv: torch.Tensor | tuple[torch.Tensor, ...]
    qkv_bias: torch.Tensor | tuple[torch.Tensor | None, ...] | None
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
    o: torch.Tensor
    o_bias: torch.Tensor | None
    ln2: torch.Tensor
    gate_up: torch.Tensor | tuple[torch.Tensor, ...]
    gate_up_bias: torch.Tensor | tuple[torch.Tensor | None, ...] | None
    down: torch.Tensor
    down_bias: torch.Tensor | None

    @property
    def fused(self) -> bool:
        """Whether q/k/v and gate/up are one matmul each."""
        return isinstance(self.qkv, torch.Tensor) and isinstance(self.gate_up, torch.Tensor)


class ModelWeights(NamedTuple):
    """Every layer's tensors and the output head's, as the model held them when built.

    ``fused`` is True when every layer's projections are fused (the flat decode runner
    and the compiled step run only then).
    """

    layers: tuple[LayerWeights, ...]
    norm: torch.Tensor
    head: torch.Tensor
    head_bias: torch.Tensor | None
    fused: bool


class LayerStep(NamedTuple):
    """What one step gives every layer: sizes, RoPE factors, attention, in-place policy.

    ``cos`` and ``sin_signed`` are ``[T, 1, d]``: the rotate-half ``sin`` with the
    first half negated, so a rotation is one roll and one ``addcmul``.
    """

    shape: LayerShape
    cos: torch.Tensor
    sin_signed: torch.Tensor
    attend: Attend
    in_place: bool = True


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Root-mean-square norm over the last dimension, computed in float32, scaled by
    ``weight``. Plain CPU float32 rows go through one C call (``native.RmsNorm``;
    a row's result does not depend on the rows beside it), other float32 inputs
    (traced, strided per head) through ``F.rms_norm``; the choice depends on the
    input's kind and layout alone, so every eager path computes the same bits."""
    if x.dtype == torch.float32 and weight.dtype == torch.float32:
        kernel = rms_norm_kernel()
        y = kernel(x, weight, eps) if kernel is not None else None
        if y is not None:
            return y
        # one fused kernel instead of six elementwise ops
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return weight * F.rms_norm(x.float(), (x.shape[-1],), None, eps).to(x.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """RoPE (rotate-half layout) of ``x`` ``[T, heads, d]``; ``in_place`` writes into ``x``
    (both operands are formed before the result is written)."""
    rolled = torch.roll(x, x.shape[-1] // 2, dims=-1)
    if in_place:
        return torch.addcmul(x * cos, rolled, sin_signed, out=x)
    return torch.addcmul(x * cos, rolled, sin_signed)


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``, also for a weight held in a narrower dtype than ``x`` (the
    engine's ``weight_dtype``): ``x`` is cast to the weight's dtype for the matmul
    and the product back to ``x``'s, so norms, residuals, attention and K/V keep the
    compute dtype; the bias is added in the compute dtype. A weight with a current
    oneDNN-packed copy (``models.packed``) is multiplied through it when ``x`` has
    enough rows (the bias then added separately)."""
    xw = x if w.dtype == x.dtype else x.to(w.dtype)
    y = packed_linear(xw, w)
    if y is None:
        if w.dtype == x.dtype:
            return F.linear(x, w, b)
        y = F.linear(xw, w)
    if y.dtype != x.dtype:
        y = y.to(x.dtype)
    return y if b is None else y + b


def _project(
    x: torch.Tensor,
    w: torch.Tensor | tuple[torch.Tensor, ...],
    b: torch.Tensor | tuple[torch.Tensor | None, ...] | None,
) -> torch.Tensor:
    if isinstance(w, torch.Tensor):
        return linear(x, w, b)  # type: ignore[arg-type]
    biases = b if isinstance(b, tuple) else (None,) * len(w)
    return torch.cat([linear(x, wi, bi) for wi, bi in zip(w, biases, strict=True)], dim=-1)


def attention_inputs(x: torch.Tensor, w: LayerWeights, step: LayerStep) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries ``[T, heads, d]`` and new K/V ``[T, 2 * kv_heads, d]`` of the normed input ``x``.

    Without per-head norms (and with ``step.in_place``) q and k heads are adjacent in
    the projection output, so one in-place rotation covers both and K/V stay one view
    of it (the pool is written without a concatenation).
    """
    h, kvh, d, eps = step.shape
    qkv = _project(x, w.qkv, w.qkv_bias).view(x.shape[0], h + 2 * kvh, d)
    cos, sin = step.cos, step.sin_signed
    if w.q_norm is None or w.k_norm is None:
        if step.in_place:
            rotate(qkv[:, : h + kvh], cos, sin, in_place=True)
            return qkv[:, :h], qkv[:, h:]
        qk = rotate(qkv[:, : h + kvh], cos, sin)
        return qk[:, :h], torch.cat((qk[:, h:], qkv[:, h + kvh :]), dim=1)
    q = rotate(rms_norm(qkv[:, :h], w.q_norm, eps), cos, sin)
    k = rotate(rms_norm(qkv[:, h : h + kvh], w.k_norm, eps), cos, sin)
    return q, torch.cat((k, qkv[:, h + kvh :]), dim=1)


def output_projection(attn: torch.Tensor, w: LayerWeights) -> torch.Tensor:
    """``o_proj`` of an ``attend`` result (``T'`` rows)."""
    return linear(attn.reshape(attn.shape[0], -1), w.o, w.o_bias)


def mlp(
    x: torch.Tensor,
    gate_up: torch.Tensor | tuple[torch.Tensor, ...],
    gate_up_bias: torch.Tensor | tuple[torch.Tensor | None, ...] | None,
    down: torch.Tensor,
    down_bias: torch.Tensor | None,
    in_place: bool = True,
) -> torch.Tensor:
    """SwiGLU: ``down(silu(gate(x)) * up(x))`` (weights as in :class:`LayerWeights`);
    ``in_place`` runs SiLU and the product on the fresh gate/up matmul output."""
    gu = _project(x, gate_up, gate_up_bias)
    inter = gu.shape[-1] // 2
    if in_place:
        act = F.silu(gu[..., :inter], inplace=True).mul_(gu[..., inter:])
    else:
        act = F.silu(gu[..., :inter]) * gu[..., inter:]
    return linear(act, down, down_bias)


def decoder_layer(
    h: torch.Tensor,
    w: LayerWeights,
    layer: int,
    step: LayerStep,
    *,
    keep: torch.Tensor | None = None,
    attn_hook: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """One pre-norm layer: ``h + attn(norm(h))``, then ``+ mlp(norm(.))``.

    Args:
        h: hidden states ``[T, hidden]``.
        w: the layer's tensors.
        layer: the layer's index (passed to ``step.attend``).
        step: sizes, RoPE factors, attention and in-place policy of this step.
        keep: rows of ``h`` the layer computes on past attention (``step.attend`` then
            returns those rows only); None keeps every row.
        attn_hook: applied to the attention block's output before the residual add.

    The residual additions stay separate from the matmuls (no ``addmm``): a fused add
    rounds differently, and the hooked and unhooked paths must agree bit for bit.
    """
    q, kv = attention_inputs(rms_norm(h, w.ln1, step.shape.eps), w, step)
    a = output_projection(step.attend(layer, q, kv), w)
    if keep is not None:
        h = h[keep]
    if attn_hook is not None:
        a = attn_hook(a)
    h = h + a
    x = rms_norm(h, w.ln2, step.shape.eps)
    return h + mlp(x, w.gate_up, w.gate_up_bias, w.down, w.down_bias, step.in_place)


def final_logits(
    h: torch.Tensor, norm: torch.Tensor, head: torch.Tensor, head_bias: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """Float32 logits of the hidden states ``h`` (final norm, then the LM head)."""
    return linear(rms_norm(h, norm, eps), head, head_bias).float()
