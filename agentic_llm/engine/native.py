"""Small C helpers for the engine's step, built at first use with the system C compiler.

``masked_row_max`` gives, for each row of CPU float32 logits, the max and the index
of the first maximal entry of the logits masked by a packed constraint row (xgrammar
layout), exactly as ``row_max(masked_logits(...))`` does with numpy, but in one call
that reads the 3 KB packed mask instead of a 96 KB float bias made on the mask
worker, and visits only the allowed tokens of each row (a handful at most DSL
positions). A row holding a NaN or +inf anywhere is computed entry by entry with
the bias's float semantics (NaN + -inf is NaN, +inf + -inf is NaN), so a broken row
shows the same NaN max as before.

Right after the compiled decode step every numpy call costs several times what it
costs in a loop; one C call in place of about ten is what this saves
(docs/engine.md, "Constrained decoding cost").

``spin_until_changed`` and ``run_ringing`` hand the mask worker its fill without
waking a sleeping thread (on this kind of virtual machine a futex wake of a thread
on an idle CPU costs the waker about 50 us): the worker waits on a counter in C with
the GIL released for a bounded time, and the compiled step's call bumps the counter
from C, once the GIL is already free (``masking.MaskFiller``).

``rows_matmul`` multiplies 1 to 8 float32 rows by a row-major weight
(``RowsMatmul``; the decode matmuls of small batches, through ``models.packed``), and
``rms_norm_rows`` normalizes a few float32 rows in one call (``RmsNorm``; every
decoder layer's norms at decode sizes, through ``decoder_step.rms_norm``).

The source is ``native_kernels.c`` beside this module (package data). The library
is compiled once per source version into a per-user cache directory
(``$AGENTIC_LLM_CACHE_DIR`` or ``~/.cache/agentic-llm``) and loaded through
:mod:`ctypes`. Without a C compiler :func:`native_library` returns None: the sampler
keeps its numpy path and the mask worker sleeps between fills.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["ROWS_MATMUL_MAX_ROWS", "DecodeAttention", "MaskedRowMax", "RmsNorm", "RowsMatmul",
           "decode_attention_kernel", "masked_row_max_kernel", "native_library", "rms_norm_kernel",
           "rows_matmul_kernel"]

log = logging.getLogger(__name__)

_SOURCE = (Path(__file__).resolve().parent / "native_kernels.c").read_text(encoding="utf-8")

_lock = threading.Lock()
_loaded: dict[str, Any] = {}


def _cache_dir() -> Path:
    """Where the built library is kept: ``$AGENTIC_LLM_CACHE_DIR``, else the user's
    cache directory, else (not writable) a per-user folder in the temp directory."""
    root = os.environ.get("AGENTIC_LLM_CACHE_DIR")
    if root:
        return Path(root)
    home = Path.home() / ".cache" / "agentic-llm"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"agentic-llm-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _build() -> Any:
    """The loaded library, compiled into the cache directory if not there yet; None
    when no C compiler is found or the build fails (logged once)."""
    tag = hashlib.sha256(_SOURCE.encode()).hexdigest()[:16]
    lib_path = _cache_dir() / f"engine_native-{tag}.so"
    if not lib_path.is_file():
        cc = _compiler()
        if cc is None:
            log.info("no C compiler found: the sampler keeps its numpy masking")
            return None
        try:
            lib_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("no folder for the engine's C helpers (%s)", exc)
            return None
        with tempfile.TemporaryDirectory(dir=lib_path.parent) as tmp:
            src = Path(tmp) / "engine_native.c"
            src.write_text(_SOURCE, encoding="utf-8")
            out = Path(tmp) / lib_path.name
            # no -ffast-math: the NaN and infinity semantics above must hold. OpenMP
            # (``rows_matmul``'s threads) when the compiler has it: the library then
            # shares the OpenMP runtime torch loaded (same soname), not a second pool
            base = [cc, "-O3", "-shared", "-fPIC", "-o", str(out), str(src)]
            err = b""
            for cmd in (base[:1] + ["-fopenmp"] + base[1:], base):
                try:
                    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
                    break
                except (OSError, subprocess.SubprocessError) as exc:
                    err = getattr(exc, "stderr", b"") or str(exc).encode()
            else:
                log.warning("building the engine's C helpers failed: %s", err.decode(errors="replace")[:500])
                return None
            os.replace(out, lib_path)  # atomic: a concurrent build writes the same bytes
    try:
        lib = ctypes.CDLL(str(lib_path))
    except OSError as exc:  # a damaged file in the cache: left for a look, not used
        log.warning("cannot load the engine's C helpers from %s: %s", lib_path, exc)
        return None
    fn = lib.masked_row_max
    fn.restype = ctypes.c_int64
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    spin = lib.spin_until_changed
    spin.restype = ctypes.c_int64
    spin.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
    ring = lib.run_ringing
    ring.restype = ctypes.c_int32
    ring.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                     ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                     ctypes.c_void_p]
    level = lib.rows_matmul_level
    level.restype = ctypes.c_int64
    level.argtypes = []
    mm = lib.rows_matmul
    mm.restype = ctypes.c_int64
    mm.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                   ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
    att = lib.decode_attention_f32
    att.restype = ctypes.c_int64
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    att.argtypes = [ptr, i64, i64, i64, ptr, ptr, i64, i64, i64, i64, i64, i64, i64, i64, ptr, ptr, i64, i64,
                    ctypes.c_float,
                    ptr, i64, i64, i64, i64]
    rms = lib.rms_norm_rows
    rms.restype = None
    rms.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                    ctypes.c_float, ctypes.c_void_p, ctypes.c_int64]
    return lib


def native_library() -> Any:
    """The loaded library (``masked_row_max``, ``spin_until_changed``,
    ``run_ringing``), built once per process; None without a C compiler."""
    with _lock:
        if "lib" not in _loaded:
            _loaded["lib"] = _build()
        return _loaded["lib"]


#: most rows ``rows_matmul`` takes (its accumulators hold 8 rows)
ROWS_MATMUL_MAX_ROWS = 8


class RowsMatmul:
    """``x @ w.T`` for 1..``ROWS_MATMUL_MAX_ROWS`` rows of float32 ``x`` and a row-major
    float32 weight, through the C kernel (``rows_matmul`` in ``native_kernels.c``).

    At decode batch sizes the BLAS matmul reads the weight at about half the memory
    bandwidth; this kernel streams each weight row once for all rows with the next
    rows prefetched (figures: docs/engine.md, "Few-row matmul in C"). Each output is
    one sum over ``k`` in a fixed order, whatever the thread count.
    """

    def __init__(self, lib: Any, level: int) -> None:
        self._fn = lib.rows_matmul
        self.level = level

    def __call__(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor | None:
        """The product ``[rows, N]``, or None when the shapes are not covered (the
        caller then uses ``F.linear``). ``w``: ``[N, K]`` C-contiguous float32."""
        m, k = x.shape
        if x.dtype != torch.float32 or not 0 < m <= ROWS_MATMUL_MAX_ROWS or w.shape[1] != k:
            return None
        if not x.is_contiguous():
            x = x.contiguous()
        n = w.shape[0]
        y = torch.empty((m, n), dtype=torch.float32)
        if self._fn(x.data_ptr(), m, k, w.data_ptr(), n, y.data_ptr(), torch.get_num_threads(), self.level):
            return None
        return y


@functools.cache
def rows_matmul_kernel() -> RowsMatmul | None:
    """The few-row float32 matmul (made once per process); None without a compiler
    or on a CPU it does not cover (x86-64 with AVX2 and FMA, or AVX-512)."""
    lib = native_library()
    if lib is None:
        return None
    level = int(lib.rows_matmul_level())
    return RowsMatmul(lib, level) if level > 0 else None


class RmsNorm:
    """RMSNorm of float32 rows in one C call (``rms_norm_rows``): what ``F.rms_norm``
    runs as six tensor ops, about 60 us a call at decode sizes on a 2-vCPU Xeon,
    against a few microseconds here. Equal to it within float rounding."""

    def __init__(self, lib: Any, level: int) -> None:
        self._fn = lib.rms_norm_rows
        self.level = level

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor | None:
        """``F.rms_norm(x, (K,), weight, eps)``, or None when ``x`` is not covered: not
        a plain CPU float32 tensor (a traced or fake one included), rows not
        evenly spaced, or a gradient to record. A row's result does not depend on how many rows come with it."""
        if type(x) is not torch.Tensor or x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() < 2:
            return None
        if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
            return None  # autograd needs torch's ops
        k = x.shape[-1]
        rows = x.numel() // k if k else 0
        if rows == 0 or weight.numel() != k or not weight.is_contiguous():
            return None
        if x.is_contiguous():
            ldx = k
        elif x.dim() == 2 and x.stride(1) == 1:
            ldx = x.stride(0)
        else:
            return None
        out = torch.empty(x.shape, dtype=torch.float32)
        self._fn(x.data_ptr(), rows, k, ldx, weight.data_ptr(), eps, out.data_ptr(), self.level)
        return out


@functools.cache
def rms_norm_kernel() -> RmsNorm | None:
    """The C RMSNorm (made once per process); None without a compiler."""
    lib = native_library()
    return RmsNorm(lib, int(lib.rows_matmul_level())) if lib is not None else None


class DecodeAttention:
    """Attention of one query token per row over a dense K/V workspace, in one C call
    (``decode_attention_f32`` in ``native_kernels.c``): scores, softmax and the
    weighted sum of every KV head and row, the rows' shared prefix read from row 0.
    Equal to SDPA within float rounding."""

    def __init__(self, lib: Any) -> None:
        self._fn = lib.decode_attention_f32

    def __call__(self, qg: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, lens: torch.Tensor,
                 scale: float, shared: int, rowmap: torch.Tensor | None = None) -> torch.Tensor | None:
        """``[kv_heads, rows, groups, d]`` (a view of a ``[rows, kv_heads, groups, d]``
        tensor), or None when not covered (the caller then uses torch).

        ``qg`` ``[kv_heads, rows, groups, d]``; ``keys``/``values`` ``[kv_heads, rows,
        key_len, d]`` with equal strides; ``lens`` int64 ``[rows]``: the keys each row
        attends over (at most ``key_len``, at least ``shared``). With ``rowmap``
        (int64 ``[rows]``) query row ``r`` reads K/V row ``rowmap[r]``: the tokens of
        a row with several queries, each with its own length."""
        if not all(type(t) is torch.Tensor and t.dtype == torch.float32 and t.device.type == "cpu"
                   for t in (qg, keys, values)):
            return None
        if torch.is_grad_enabled() and (qg.requires_grad or keys.requires_grad or values.requires_grad):
            return None
        kvh, rows, groups, d = qg.shape
        if rowmap is not None and (rowmap.dtype != torch.int64 or rowmap.numel() != rows
                                   or not rowmap.is_contiguous()):
            return None
        kv_rows = keys.shape[1]
        if (keys.shape != values.shape or keys.shape[0] != kvh or keys.shape[3] != d
                or (rowmap is None and kv_rows != rows)
                or keys.stride() != values.stride() or keys.stride(3) != 1 or qg.stride(3) != 1
                or lens.dtype != torch.int64 or lens.numel() != rows or not lens.is_contiguous()):
            return None
        out = torch.empty((rows, kvh, groups, d), dtype=torch.float32)
        og = out.transpose(0, 1)
        ks = keys.stride()
        if self._fn(qg.data_ptr(), qg.stride(0), qg.stride(1), qg.stride(2), keys.data_ptr(), values.data_ptr(),
                    ks[0], ks[1], ks[2], keys.shape[2], kvh, rows, groups, d, lens.data_ptr(),
                    None if rowmap is None else rowmap.data_ptr(), kv_rows, shared, scale,
                    og.data_ptr(), og.stride(0), og.stride(1), og.stride(2), torch.get_num_threads()):
            return None
        return og


@functools.cache
def decode_attention_kernel() -> DecodeAttention | None:
    """The C decode attention (made once per process); None without a compiler or on
    a CPU without AVX2 and FMA."""
    lib = native_library()
    return DecodeAttention(lib) if lib is not None and int(lib.rows_matmul_level()) > 0 else None


def masked_row_max_kernel() -> Any:
    """The C masked row max; None without a compiler."""
    lib = native_library()
    return lib.masked_row_max if lib is not None else None


class MaskedRowMax:
    """Calls the kernel with output buffers kept per row count (one engine owns one).

    ``__call__(logits, mask, rows)``: ``logits`` CPU float32 ``[S, vocab]`` (rows
    contiguous; :meth:`applies`), ``mask`` the step's int32 ``[len(rows), words]``
    mask (C-contiguous, as ``MaskFiller`` makes it), mask row ``i`` applying to
    logits row ``rows[i]`` (``rows`` ascending, distinct); returns ``(max per row,
    argmax per row, whether every max is finite)``, the first two as ``row_max``
    would give them for the masked logits. The max array is a buffer the next call
    overwrites.
    """

    def __init__(self, fn: Any) -> None:
        self._fn = fn
        # per row count: maxima, argmaxes, mask row per logits row, and their addresses
        self._bufs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]] = {}
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, n: int) -> np.ndarray:
        order = self._orders.get(n)
        if order is None:
            order = self._orders[n] = np.arange(n, dtype=np.int64)
        return order

    @staticmethod
    def applies(logits: torch.Tensor) -> bool:
        return logits.dtype == torch.float32 and logits.device.type == "cpu" and logits.stride(-1) == 1

    def __call__(self, logits: torch.Tensor, mask: torch.Tensor,
                 rows: list[int]) -> tuple[np.ndarray, list[int], bool]:
        n, vocab = logits.shape
        bufs = self._bufs.get(n)
        if bufs is None:
            if len(self._bufs) >= 64:
                self._bufs.clear()
            out_max, out_arg, which = np.empty(n, np.float32), np.empty(n, np.int64), np.empty(n, np.int64)
            bufs = self._bufs[n] = (out_max, out_arg, which, out_max.ctypes.data, out_arg.ctypes.data,
                                    which.ctypes.data)
        out_max, out_arg, which, p_max, p_arg, p_which = bufs
        if len(rows) == n:  # ascending and distinct: every row, in order
            which[:] = self._order(n)
        else:
            which.fill(-1)
            which[rows] = self._order(len(rows))
        words = mask.shape[1]
        if words * 32 < vocab:
            raise ValueError(f"a mask of {words} words cannot cover {vocab} tokens")
        bad = self._fn(logits.data_ptr(), n, vocab, logits.stride(0), mask.data_ptr(), words, p_which, p_max, p_arg)
        return out_max, out_arg.tolist(), bad == 0
