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

The library is compiled once per source version into a per-user cache directory
(``$AGENTIC_LLM_CACHE_DIR`` or ``~/.cache/agentic-llm``) and loaded through
:mod:`ctypes`. Without a C compiler :func:`native_library` returns None: the sampler
keeps its numpy path and the mask worker sleeps between fills.
"""

from __future__ import annotations

import ctypes
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

__all__ = ["MaskedRowMax", "masked_row_max_kernel", "native_library"]

log = logging.getLogger(__name__)

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>

/* Entry j of row l as the masked logits hold it: itself when allowed, else
   l[j] + -inf (-inf, or NaN for a NaN or +inf logit). */
static inline float masked_value(const float *l, const uint32_t *m, int64_t j) {
    if (!m || ((m[j >> 5] >> (j & 31)) & 1u)) return l[j];
    return l[j] + (-INFINITY);
}

/* numpy's argmax: the first maximal entry, or the first NaN. */
static void exact_row(const float *l, const uint32_t *m, int64_t vocab, float *out_max, int64_t *out_arg) {
    float best = masked_value(l, m, 0);
    int64_t arg = 0;
    if (!isnan(best)) {
        for (int64_t j = 1; j < vocab; ++j) {
            float v = masked_value(l, m, j);
            if (isnan(v)) { best = v; arg = j; break; }
            if (v > best) { best = v; arg = j; }
        }
    }
    *out_max = best;
    *out_arg = arg;
}

/* Row i of logits [rows, lstride] is masked by mask row mask_row[i] (< 0: none).
   Returns how many rows' max is not finite (NaN, +inf, or -inf: nothing allowed). */
int64_t masked_row_max(const float *logits, int64_t rows, int64_t vocab, int64_t lstride,
                    const uint32_t *mask, int64_t mwords, const int64_t *mask_row,
                    float *out_max, int64_t *out_arg) {
    int64_t not_finite = 0;
    for (int64_t i = 0; i < rows; ++i) {
        const float *l = logits + i * lstride;
        const uint32_t *m = mask_row[i] >= 0 ? mask + mask_row[i] * mwords : 0;
        int bad = 0;  /* a NaN or +inf anywhere in the row */
        for (int64_t j = 0; j < vocab; ++j) bad |= (l[j] != l[j]) | (l[j] == INFINITY);
        if (bad || !m) {
            exact_row(l, m, vocab, &out_max[i], &out_arg[i]);
            not_finite += !isfinite(out_max[i]);
            continue;
        }
        /* finite row: only allowed entries can be the max; ids ascend, so the
           first strictly greater one is numpy's first maximal entry */
        float best = -INFINITY;
        int64_t arg = -1;
        for (int64_t w = 0; w < mwords; ++w) {
            uint32_t bits = m[w];
            while (bits) {
                int64_t j = w * 32 + __builtin_ctz(bits);
                bits &= bits - 1;
                if (j >= vocab) break;
                if (arg < 0 || l[j] > best) { best = l[j]; arg = j; }
            }
        }
        /* nothing allowed, or only -inf logits: every entry is -inf, numpy's argmax is 0 */
        if (arg < 0 || best == -INFINITY) { best = -INFINITY; arg = 0; }
        out_max[i] = best;
        out_arg[i] = arg;
        not_finite += !isfinite(out_max[i]);  /* nothing allowed, or only -inf logits */
    }
    return not_finite;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait until *counter differs from seen, at most max_ns; returns its value then. */
int64_t spin_until_changed(const volatile int64_t *counter, int64_t seen, int64_t max_ns) {
    int64_t deadline = now_ns() + max_ns;
    for (;;) {
        for (int k = 0; k < 256; ++k) {
            int64_t v = __atomic_load_n(counter, __ATOMIC_ACQUIRE);
            if (v != seen) return v;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        if (now_ns() >= deadline) return __atomic_load_n(counter, __ATOMIC_ACQUIRE);
    }
}

/* AOTInductorModelContainerRun through this shim bumps *bell first: the caller
   (ctypes) has released the GIL by then, so a waiter taking it does not have to be
   woken. */
typedef int32_t (*aoti_run_fn)(void *, void **, size_t, void **, size_t, void *, void *);
int32_t run_ringing(aoti_run_fn run, void *handle, void **inputs, size_t n_in, void **outputs,
                    size_t n_out, void *stream, void *proxy, volatile int64_t *bell) {
    __atomic_add_fetch(bell, 1, __ATOMIC_RELEASE);
    return run(handle, inputs, n_in, outputs, n_out, stream, proxy);
}
"""

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
            # no -ffast-math: the NaN and infinity semantics above must hold
            cmd = [cc, "-O3", "-shared", "-fPIC", "-o", str(out), str(src)]
            try:
                subprocess.run(cmd, check=True, capture_output=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as exc:
                err = getattr(exc, "stderr", b"") or b""
                log.warning("building the engine's C helpers failed (%s): %s", exc,
                            err.decode(errors="replace")[:500])
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
    return lib


def native_library() -> Any:
    """The loaded library (``masked_row_max``, ``spin_until_changed``,
    ``run_ringing``), built once per process; None without a C compiler."""
    with _lock:
        if "lib" not in _loaded:
            _loaded["lib"] = _build()
        return _loaded["lib"]


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
