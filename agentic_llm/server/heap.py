"""Keep the native heap of a long-running server from creeping up (glibc only).

Under many request threads glibc gives threads their own malloc arenas and keeps
freed pages of each; with tensors, token lists and grammar rows of every size
allocated and freed on different threads, resident memory creeps up although
nothing leaks. Two knobs bound it: a cap on the number of arenas
(``mallopt(M_ARENA_MAX)``) and a thread that hands freed heap pages back to the
kernel every few seconds (``malloc_trim(0)``). Both are no-ops off glibc. The
tokenizer's word cache is capped too (:func:`bound_tokenizer_cache`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from typing import Any

__all__ = ["HeapBound", "bound_tokenizer_cache"]

_log = logging.getLogger(__name__)
_M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc
    return libc


class HeapBound:
    """Caps malloc arenas and trims the heap periodically until :meth:`stop`.

    Args:
        arena_max: most malloc arenas (0: leave glibc's default).
        trim_interval_s: seconds between ``malloc_trim(0)`` calls (0: never).
    """

    def __init__(self, arena_max: int, trim_interval_s: float) -> None:
        self._libc = _libc()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.trims = 0
        if self._libc is None:
            if arena_max or trim_interval_s:
                _log.info("heap bounds need glibc; not applied")
            return
        if arena_max > 0:
            self._libc.mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(arena_max))
        if trim_interval_s > 0:
            self._interval = trim_interval_s
            self._thread = threading.Thread(target=self._run, name="agentic-heap-trim",
                                            daemon=True)
            self._thread.start()

    def trim(self) -> None:
        """Give freed heap pages back to the kernel now."""
        if self._libc is not None:
            self._libc.malloc_trim(ctypes.c_size_t(0))
            self.trims += 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.trim()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def bound_tokenizer_cache(tokenizer: Any, words: int) -> bool:
    """Cap the word cache of a ``tokenizers`` BPE model at ``words`` entries.

    Every distinct word a prompt holds is cached with its merges until the cache is
    full (10,000 words by default, about 27 MB measured with the shipped tokenizer):
    under unique requests that is memory that only grows for the first minutes.
    Returns False when the tokenizer has no resizable cache (or ``words`` is 0).
    """
    resize = getattr(getattr(tokenizer, "model", None), "_resize_cache", None)
    if words <= 0 or not callable(resize):
        return False
    resize(words)
    return True
