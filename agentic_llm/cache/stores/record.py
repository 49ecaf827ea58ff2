"""Authenticated record frames: what LMDB and Redis actually hold.

Layout (little-endian)::

    magic b"SGC2" | expires_at f64 (0: never) | payload length u32 | tag 16 | payload

The tag is an HMAC-SHA256 (first 16 bytes) under a key only the servers hold, over
the record's store key, its expiry and its payload. A torn write, a flipped bit, a
record forged without the key, or a genuine record copied under another key makes
:func:`unframe` refuse it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import NamedTuple

__all__ = ["frame", "unframe", "Unframed", "CorruptRecord", "ForgedRecord", "peek_expiry"]

_MAGIC = b"SGC2"
_HEAD = struct.Struct("<4sdI16s")


class CorruptRecord(ValueError):
    """A stored record failed its frame check (wrong magic or length)."""


class ForgedRecord(CorruptRecord):
    """A stored record's tag does not match: forged, moved, or damaged."""


class Unframed(NamedTuple):
    payload: bytes
    expires_at: float | None


def _tag(secret: bytes, key: str, expires: float, payload: bytes) -> bytes:
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    k = key.encode("utf-8", "surrogateescape")
    mac.update(struct.pack("<I", len(k)))
    mac.update(k)
    mac.update(struct.pack("<d", expires))
    mac.update(payload)
    return mac.digest()[:16]


def frame(payload: bytes, expires_at: float | None, *, key: str, secret: bytes) -> bytes:
    """Wrap ``payload`` stored under ``key`` with its expiry and tag."""
    exp = 0.0 if expires_at is None else float(expires_at)
    return _HEAD.pack(_MAGIC, exp, len(payload), _tag(secret, key, exp, payload)) + payload


def peek_expiry(data: bytes) -> float | None:
    """The expiry a frame claims (unchecked; for copying a record with its TTL)."""
    if len(data) < _HEAD.size:
        return None
    exp = _HEAD.unpack_from(data)[1]
    return None if exp == 0.0 else float(exp)


def unframe(data: bytes, *, key: str, secret: bytes) -> Unframed:
    """Check and unwrap the frame stored under ``key``.

    Raises:
        CorruptRecord: wrong magic or length.
        ForgedRecord: the tag does not match (no key, other key, changed bytes).
    """
    if len(data) < _HEAD.size:
        raise CorruptRecord(f"record of {len(data)} bytes is shorter than its header")
    magic, exp, n, tag = _HEAD.unpack_from(data)
    if magic != _MAGIC:
        raise CorruptRecord("bad record magic")
    payload = bytes(data[_HEAD.size :])
    if len(payload) != n:
        raise CorruptRecord(f"record payload is {len(payload)} bytes, header says {n}")
    if not hmac.compare_digest(_tag(secret, key, exp, payload), tag):
        raise ForgedRecord("record tag mismatch (forged, moved or damaged)")
    return Unframed(payload, None if exp == 0.0 else exp)
