"""Per-request sampling parameters and the sampler.

Every request owns a ``torch.Generator`` seeded from its ``seed``; rows are sampled
one at a time with their own generator, so a seeded request draws the same tokens
whatever else shares its batch.
"""

from __future__ import annotations

import math
import secrets
import sys
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["SamplingParams", "sample_row", "apply_bitmask", "mask_bias", "masked_logits", "make_generator",
           "MaskedMax", "row_max"]


def _bad(msg: str) -> AgenticError:
    return AgenticError(ErrorCode.INVALID_REQUEST, msg)


@dataclass(frozen=True)
class SamplingParams:
    """How to pick each next token and when to stop.

    Attributes:
        max_tokens: most output tokens (sampled plus jump-forward tokens), >= 1.
        temperature: 0 means greedy.
        top_k: keep the k most likely tokens (0 = all).
        top_p: nucleus mass to keep, in (0, 1].
        seed: seeds this request's own generator; None draws a random seed.
        stop_token_ids: extra ids that end the request (besides the model's EOS).
        ignore_eos: keep going past EOS (benchmarks).
        timeout_s: wall-clock limit from admission; the request then ends with
            ERR_TIMEOUT and keeps the tokens it has.
        jump_forward: append text the constraint forces without a decode step each.
    """

    max_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    timeout_s: float | None = None
    jump_forward: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise _bad(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if not isinstance(self.temperature, int | float) or not math.isfinite(self.temperature) or self.temperature < 0:
            raise _bad(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise _bad(f"top_k must be an integer >= 0 (0 = off), got {self.top_k!r}")
        if not isinstance(self.top_p, int | float) or not 0 < self.top_p <= 1:
            raise _bad(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise _bad(f"seed must be a non-negative integer or null, got {self.seed!r}")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise _bad(f"timeout_s must be > 0 or null, got {self.timeout_s!r}")
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingParams:
        """Build from a JSON object (unknown keys are refused, nulls mean defaults)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise _bad(f"unknown sampling fields {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if v is not None or k == "seed"})


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A generator for one request, seeded from ``seed`` (random when None)."""
    g = torch.Generator(device=device)
    g.manual_seed(seed if seed is not None else secrets.randbits(63))
    return g


def apply_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """Set logits of tokens not allowed by an xgrammar-layout ``bitmask`` to -inf, in place.

    ``logits`` is ``[rows, vocab]`` and ``bitmask`` ``[rows, words]`` int32; tokens
    past ``words * 32`` are disallowed.
    """
    vocab = logits.shape[-1]
    shifts = torch.arange(32, device=bitmask.device, dtype=torch.int32)
    bits = (bitmask.unsqueeze(-1) >> shifts) & 1  # [rows, words, 32]
    allowed = bits.reshape(bitmask.shape[0], -1).bool()
    if allowed.shape[1] < vocab:
        pad = allowed.new_zeros((allowed.shape[0], vocab - allowed.shape[1]))
        allowed = torch.cat([allowed, pad], dim=1)
    logits.masked_fill_(~allowed[:, :vocab].to(logits.device), float("-inf"))


_BITS: dict[torch.device, torch.Tensor] = {}


def _allowed(bitmask: torch.Tensor, vocab: int, device: torch.device) -> torch.Tensor:
    """``[rows, vocab]`` bool from an xgrammar-layout int32 bitmask (tokens past it disallowed)."""
    bits = _BITS.get(bitmask.device)
    if bits is None:
        bits = _BITS[bitmask.device] = torch.tensor(
            [1 << j for j in range(31)] + [-(1 << 31)], dtype=torch.int32, device=bitmask.device
        )
    allowed = (bitmask.unsqueeze(-1) & bits).ne(0).view(bitmask.shape[0], -1)
    if allowed.shape[1] < vocab:
        allowed = torch.cat([allowed, allowed.new_zeros((allowed.shape[0], vocab - allowed.shape[1]))], dim=1)
    return allowed[:, :vocab].to(device)


_BIAS_LUT: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def mask_bias(bitmask: torch.Tensor, vocab: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``[rows, vocab]`` additive bias (0 allowed, -inf not) from an xgrammar-layout bitmask.

    Each byte of the mask indexes a ``[256, 8]`` table of biases, so unpacking is one
    lookup instead of shifts, comparisons and a select over every bit.
    """
    lut = _BIAS_LUT.get((device, dtype))
    if lut is None:
        byte = torch.arange(256)[:, None]
        bit_set = (byte >> torch.arange(8)[None, :]) & 1  # bit j of byte b: token 8 * b + j
        lut = _BIAS_LUT[(device, dtype)] = torch.where(
            bit_set.bool(), 0.0, float("-inf")).to(device=device, dtype=dtype)
    words = bitmask.to(device=device, dtype=torch.int32).contiguous()
    # little-endian: byte k of word w holds bits 8k..8k+7, tokens 32w + 8k ..
    bias = torch.nn.functional.embedding(words.view(torch.uint8).to(torch.int32), lut).view(words.shape[0], -1)
    if bias.shape[1] < vocab:
        bias = torch.cat([bias, bias.new_full((bias.shape[0], vocab - bias.shape[1]), float("-inf"))], dim=1)
    return bias[:, :vocab]


def masked_logits(logits: torch.Tensor, bitmask: torch.Tensor, rows: list[int],
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    """A copy of ``logits`` ``[S, vocab]`` with the tokens ``bitmask`` forbids set to -inf.

    ``bitmask`` row ``i`` (xgrammar layout) applies to logits row ``rows[i]``; the
    other rows are copied unchanged. No per-token work on the host: a few batched ops.
    ``bias``, when given, is :func:`mask_bias` of ``bitmask`` made beforehand.
    """
    if bias is not None and bias.shape[1] == logits.shape[-1]:
        bias = bias.to(device=logits.device, dtype=logits.dtype)
    elif sys.byteorder != "little":
        allowed = _allowed(bitmask, logits.shape[-1], logits.device)
        ninf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
        full = torch.full_like(logits, float("-inf"))
        full[rows] = torch.where(allowed, logits[rows], ninf)
        out = logits.clone()
        out[rows] = full[rows]
        return out
    else:
        bias = mask_bias(bitmask, logits.shape[-1], logits.device, logits.dtype)
    if len(rows) == logits.shape[0] and rows == list(range(len(rows))):
        return logits + bias
    idx = torch.tensor(rows, dtype=torch.long, device=logits.device)
    return logits.index_add(0, idx, bias)


class MaskedMax:
    """``masked_logits`` then ``row_max`` in one go, for CPU float32 logits and a CPU
    float32 bias: the masked logits are written into a buffer kept for the next
    call (one per shape), so a step allocates nothing and makes a handful of numpy
    calls. Each result is valid until the next call; one engine owns one.
    """

    def __init__(self) -> None:
        self._bufs: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

    @staticmethod
    def applies(logits: torch.Tensor, bias: torch.Tensor | None) -> bool:
        return (bias is not None and logits.device.type == "cpu" and bias.device.type == "cpu"
                and logits.dtype == torch.float32 and bias.dtype == torch.float32 and logits.dim() == 2
                and bias.shape[1] == logits.shape[1])

    def __call__(self, logits: torch.Tensor, bias: torch.Tensor,
                 rows: list[int]) -> tuple[torch.Tensor, np.ndarray, list[int]]:
        """``(masked logits, row maxima, argmax per row)``; bias row ``i`` applies to
        logits row ``rows[i]`` (ascending, distinct)."""
        a, b = logits.detach().numpy(), bias.numpy()
        hit = self._bufs.get(a.shape)
        if hit is None:
            if len(self._bufs) >= 64:
                self._bufs.clear()
            hit = self._bufs[a.shape] = (np.empty(a.shape, dtype=np.float32), np.arange(a.shape[0]))
        buf, every = hit
        if len(rows) == a.shape[0]:  # ascending and distinct: every row, in order
            np.add(a, b, out=buf)
        else:
            np.copyto(buf, a)
            buf[rows] += b
        arg = buf.argmax(axis=1)  # a NaN counts as the max, as in row_max
        return torch.from_numpy(buf), buf[every, arg], arg.tolist()


def row_max(logits: torch.Tensor) -> tuple[np.ndarray, list[int]]:
    """Each row's max (a numpy array ``[S]``) and the index of its first maximal
    value, as ``argmax`` picks it. A row holding a NaN has the max NaN.

    For CPU float32 logits the row reductions run in numpy: torch's reduction over
    a few short rows costs about 4x more (80 us against 20 us for ``[8, 3072]``).
    """
    if logits.device.type == "cpu" and logits.dtype == torch.float32 and logits.dim() == 2:
        a = logits.detach().contiguous().numpy()
        arg = a.argmax(axis=1)  # a NaN counts as the max: its row's max is NaN too
        return a[np.arange(a.shape[0]), arg], arg.tolist()
    vals, idx = logits.max(dim=-1)
    return vals.float().cpu().numpy(), idx.tolist()


def sample_row(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    """Pick the next token from one row of float32 logits ``[vocab]``."""
    if params.greedy:
        return int(torch.argmax(logits))
    x = logits / params.temperature
    if 0 < params.top_k < x.shape[-1]:
        kth = torch.topk(x, params.top_k).values[-1]
        x = x.masked_fill(x < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_x, order = torch.sort(x, descending=True)
        probs = torch.softmax(sorted_x, dim=-1)
        # drop a token when the mass before it already reaches top_p (the first always stays)
        drop = (torch.cumsum(probs, dim=-1) - probs) >= params.top_p
        sorted_x = sorted_x.masked_fill(drop, float("-inf"))
        x = torch.empty_like(x).scatter_(0, order, sorted_x)
    probs = torch.softmax(x, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
