"""Checksummed record frames: what LMDB and Redis actually hold.

Layout (little-endian)::

    magic b"SGC1" | expires_at f64 (0: never) | payload length u32 | blake2b-128 | payload

The digest covers the expiry and the payload, so a torn write, a truncated value or a
flipped bit anywhere makes :func:`unframe` refuse the record.
"""

from __future__ import annotations

import hashlib
import struct
from typing import NamedTuple

__all__ = ["frame", "unframe", "Unframed", "CorruptRecord"]

_MAGIC = b"SGC1"
_HEAD = struct.Struct("<4sdI16s")


class CorruptRecord(ValueError):
    """A stored record failed its frame or checksum check."""


class Unframed(NamedTuple):
    payload: bytes
    expires_at: float | None


def _digest(expires: float, payload: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(struct.pack("<d", expires))
    h.update(payload)
    return h.digest()


def frame(payload: bytes, expires_at: float | None) -> bytes:
    """Wrap ``payload`` with its expiry and checksum."""
    exp = 0.0 if expires_at is None else float(expires_at)
    return _HEAD.pack(_MAGIC, exp, len(payload), _digest(exp, payload)) + payload


def unframe(data: bytes) -> Unframed:
    """Check and unwrap a frame.

    Raises:
        CorruptRecord: wrong magic, wrong length or checksum mismatch.
    """
    if len(data) < _HEAD.size:
        raise CorruptRecord(f"record of {len(data)} bytes is shorter than its header")
    magic, exp, n, digest = _HEAD.unpack_from(data)
    if magic != _MAGIC:
        raise CorruptRecord("bad record magic")
    payload = bytes(data[_HEAD.size :])
    if len(payload) != n:
        raise CorruptRecord(f"record payload is {len(payload)} bytes, header says {n}")
    if _digest(exp, payload) != digest:
        raise CorruptRecord("record checksum mismatch")
    return Unframed(payload, None if exp == 0.0 else exp)
