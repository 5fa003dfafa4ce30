"""Twilio-style sids derived from integer record ids, and back.

A sid is the two-letter prefix and 32 hex digits: 16 of a keyed hash of the id (so
sids look random and a guessed sid fails the check) and 16 of an invertible mix of
the id, so a fetch by sid needs no lookup table, even for 10 million messages.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
_A = 0x9E3779B97F4A7C15  # odd: invertible modulo 2**64
_A_INV = pow(_A, -1, 1 << 64)
_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _mix(ids: np.ndarray, salt: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        y = (ids.astype(np.uint64) ^ np.uint64(salt)) * np.uint64(_A)
        return y ^ (y >> np.uint64(32))


def _hex16(values: np.ndarray) -> np.ndarray:
    b = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    parts = _HEX[b]  # (n, 8) of 2-byte strings
    return parts.view("S16").reshape(-1)


def _sid_bytes(prefix: str, ids: np.ndarray, salt: int) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    hi = _hex16(_splitmix(ids.astype(np.uint64) + np.uint64(salt & _MASK)))
    lo = _hex16(_mix(ids, salt))
    return np.char.add(np.char.add(prefix.encode(), hi), lo)


def sid_strings(prefix: str, ids: np.ndarray, salt: int) -> np.ndarray:
    """Object array of sids for integer ids (vectorised)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0:
        return np.array([], dtype=object)
    return _sid_bytes(prefix, ids, salt).astype("U34").astype(object)


def sid_list(prefix: str, ids, salt: int) -> list[str]:
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size == 0:
        return []
    return [b.decode() for b in _sid_bytes(prefix, ids, salt).tolist()]


def sid_series(prefix: str, ids: np.ndarray, salt: int):
    """A pandas string Series (Arrow-backed, compact) of sids."""
    import pyarrow as pa

    ids = np.asarray(ids, dtype=np.int64)
    chunks = [pa.array(_sid_bytes(prefix, ids[i : i + 1_000_000], salt), pa.binary(34)).cast(pa.string())
              for i in range(0, max(ids.size, 1), 1_000_000)] if ids.size else [pa.array([], pa.string())]
    return pa.chunked_array(chunks, pa.string()).to_pandas()


def sid_for(prefix: str, record_id: int, salt: int) -> str:
    return str(sid_strings(prefix, np.array([record_id]), salt)[0])


def id_for(sid: str, prefix: str, salt: int) -> int | None:
    """The record id a sid stands for, or None when it is not one of ours."""
    if len(sid) != 34 or not sid.startswith(prefix):
        return None
    try:
        lo = int(sid[18:], 16)
        int(sid[2:18], 16)
    except ValueError:
        return None
    y = lo ^ (lo >> 32)
    x = (y * _A_INV) & _MASK
    rid = x ^ (salt & _MASK)
    if rid >= 1 << 62 or sid_for(prefix, rid, salt) != sid.lower()[:2].upper() + sid[2:].lower():
        return None
    return rid
