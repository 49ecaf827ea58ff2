"""Dequantize GGUF tensor data to float32 with numpy, one vectorised pass per tensor.

Block layouts (32 values per block, little-endian, as ggml writes them):

- ``Q4_0``: fp16 scale ``d``, 16 bytes of nibbles; ``x = (q - 8) * d``.
- ``Q4_1``: fp16 scale ``d``, fp16 minimum ``m``, 16 bytes of nibbles; ``x = q * d + m``.
- ``Q8_0``: fp16 scale ``d``, 32 signed bytes; ``x = q * d``.

In the 4-bit types the low nibbles of a block's 16 bytes are values 0-15 and the high
nibbles values 16-31.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["SUPPORTED_TYPES", "dequantize"]

_BLOCK = 32


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """``[blocks, 16]`` bytes -> ``[blocks, 32]`` values 0..15 (low nibbles first)."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)


def _scale(raw: np.ndarray, at: int) -> np.ndarray:
    return raw[:, at:at + 2].copy().view(np.float16).astype(np.float32)


def _q4_0(raw: np.ndarray) -> np.ndarray:
    d = _scale(raw, 0)
    return (_nibbles(raw[:, 2:18]) - 8.0) * d


def _q4_1(raw: np.ndarray) -> np.ndarray:
    d, m = _scale(raw, 0), _scale(raw, 2)
    return _nibbles(raw[:, 4:20]) * d + m


def _q8_0(raw: np.ndarray) -> np.ndarray:
    d = _scale(raw, 0)
    return raw[:, 2:34].copy().view(np.int8).astype(np.float32) * d


#: type name -> (bytes per block, block decoder)
_QUANTS: dict[str, tuple[int, Callable[[np.ndarray], np.ndarray]]] = {
    "Q4_0": (18, _q4_0),
    "Q4_1": (20, _q4_1),
    "Q8_0": (34, _q8_0),
}
_FLOATS = {"F32": np.float32, "F16": np.float16}
SUPPORTED_TYPES = tuple(sorted([*_QUANTS, *_FLOATS, "BF16"]))


def dequantize(data: np.ndarray, type_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 array of ``shape`` (row-major, PyTorch order) stored in ``data``.

    Args:
        data: the tensor's bytes as the GGUF reader maps them (any shape).
        type_name: the ggml type name (``Q4_1``, ``F16``, ...).
        shape: the logical shape, outermost dimension first.

    Raises:
        AgenticError: ERR_UNSUPPORTED_MODEL for a type not in ``SUPPORTED_TYPES`` or
            data whose size does not fit the shape.
    """
    n = int(np.prod(shape)) if shape else 1
    if type_name in _FLOATS:
        flat = np.asarray(data).reshape(-1).view(_FLOATS[type_name]) \
            if np.asarray(data).dtype == np.uint8 else np.asarray(data).reshape(-1)
        out = flat.astype(np.float32)
    elif type_name == "BF16":
        u16 = np.asarray(data).reshape(-1).view(np.uint16).astype(np.uint32)
        out = (u16 << 16).view(np.float32)
    elif type_name in _QUANTS:
        size, decode = _QUANTS[type_name]
        raw = np.asarray(data).reshape(-1).view(np.uint8)
        if n % _BLOCK or raw.size != n // _BLOCK * size:
            raise AgenticError(ErrorCode.UNSUPPORTED_MODEL,
                               f"{type_name} data of {raw.size} bytes does not hold shape {shape}")
        out = decode(raw.reshape(-1, size)).reshape(-1)
    else:
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL,
                           f"GGUF tensor type {type_name} is not supported; supported: "
                           f"{', '.join(SUPPORTED_TYPES)}", tensor_type=type_name)
    if out.size != n:
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL,
                           f"{type_name} tensor has {out.size} values, shape {shape} needs {n}")
    return out.reshape(shape)
