"""Memory bandwidth of this machine, and how much of it a decode step's weights use.

A decode step of a small batch reads every weight once; when the weights do not fit
in the caches its time is bounded below by ``weight bytes / bandwidth``.
:func:`measure_bandwidth` measures two bandwidths with torch's own kernels on the
threads the benchmark runs (``torch.get_num_threads()``): a copy of a large fp32
tensor (bytes read + bytes written per second) and a sum over one (bytes read per
second, the access pattern of weights). :func:`weight_bytes` counts what a decode
step reads, so a row's ``weight bytes x decode steps/s`` can be put next to them.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

__all__ = ["measure_bandwidth", "weight_bytes", "weight_traffic"]


def _timed(fn: Any, repeat: int, device: torch.device) -> list[float]:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()  # first touch: page faults, thread start-up
    sync()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def _copy_times(n: int, repeat: int, device: torch.device) -> list[float]:
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    return _timed(lambda: dst.copy_(src), repeat, device)


def measure_bandwidth(mb: int = 512, repeat: int = 5, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Copy and read bandwidth in GB/s (1e9 bytes), best and median of ``repeat``.

    The copy moves an ``mb`` MiB fp32 tensor into another (``2 x mb`` MiB of traffic
    per run); the read sums a ``2 x mb`` MiB tensor, so both touch twice ``mb`` and
    stay out of a cache of ``mb`` MiB or less.
    """
    dev = torch.device(device)
    n = mb * (1 << 20) // 4
    copy = _copy_times(n, repeat, dev)
    big = torch.ones(2 * n, dtype=torch.float32, device=dev)
    read = _timed(big.sum, repeat, dev)
    del big
    nbytes = n * 4
    return {
        "tensor_mb": mb,
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "repeat": repeat,
        "copy_gb_s_best": 2 * nbytes / min(copy) / 1e9,
        "copy_gb_s_median": 2 * nbytes / statistics.median(copy) / 1e9,
        "read_gb_s_best": 2 * nbytes / min(read) / 1e9,
        "read_gb_s_median": 2 * nbytes / statistics.median(read) / 1e9,
    }


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of weights one decode step reads: every parameter's storage once (shared
    and fused storages counted once), except an embedding table that is not also the
    output head (a step reads only its rows)."""
    seen: set[int] = set()
    total = 0
    head = getattr(getattr(model, "lm_head", None), "weight", None)
    for name, p in model.named_parameters(remove_duplicate=False):
        if "embed_tokens" in name and (head is None or p.untyped_storage().data_ptr()
                                        != head.untyped_storage().data_ptr()):
            continue
        st = p.untyped_storage()
        if st.data_ptr() in seen:
            continue
        seen.add(st.data_ptr())
        total += st.nbytes()
    return total


def weight_traffic(nbytes: int, tpot_s: float, bandwidth: dict[str, Any]) -> dict[str, float]:
    """A row's weight bytes read per second (one decode step per ``tpot_s``) in GB/s,
    and as shares of the measured best read and copy bandwidths."""
    if not tpot_s > 0:
        return {"weight_gb_s": float("nan"), "weight_share_of_read_bw": float("nan"),
                "weight_share_of_copy_bw": float("nan")}
    gb_s = nbytes / tpot_s / 1e9
    return {"weight_gb_s": gb_s,
            "weight_share_of_read_bw": gb_s / bandwidth["read_gb_s_best"],
            "weight_share_of_copy_bw": gb_s / bandwidth["copy_gb_s_best"]}
