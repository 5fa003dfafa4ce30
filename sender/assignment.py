"""Deterministic assignment of recipients to variants.

``bucket(salt, user_id)`` maps a user to a point in [0, 1) with SHA-256, so the same user
always lands in the same place for the same experiment salt, on any machine and in any
Python process (``hash()`` is randomised per process and is not used). Variants take
consecutive slices of [0, 1) in their declared order, each as wide as its share of the
total weight: a variant with weight 0 receives nobody.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, TypeVar

__all__ = ["assign_variant", "bucket"]

_SCALE = float(2**64)


class _Weighted(Protocol):
    @property
    def weight(self) -> float: ...


V = TypeVar("V", bound=_Weighted)


def bucket(salt: str, user_id: str) -> float:
    """A uniform, stable point in [0, 1) for this user under this salt."""
    digest = hashlib.sha256(f"{salt}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign_variant(salt: str, user_id: str, variants: Sequence[V]) -> V:
    """The variant whose slice of [0, 1) holds the user's bucket."""
    total = sum(v.weight for v in variants)
    if not variants or total <= 0:
        raise ValueError("need at least one variant with a positive weight")
    point = bucket(salt, user_id) * total
    edge = 0.0
    for variant in variants:
        edge += variant.weight
        if point < edge and variant.weight > 0:
            return variant
    # Rounding can leave the point a hair past the last edge: the last variant with weight wins.
    return [v for v in variants if v.weight > 0][-1]
