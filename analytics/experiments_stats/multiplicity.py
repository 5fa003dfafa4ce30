"""Multiplicity corrections: Holm (family-wise error) and Benjamini-Hochberg (false discovery rate)."""

from __future__ import annotations

from collections.abc import Sequence


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, returned in the input order.

    Sort ascending; the k-th smallest (1-based) gets (m - k + 1) * p, capped at
    1, then a running maximum keeps the adjusted values monotone.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running_max = 0.0
    for rank, index in enumerate(order):
        running_max = max(running_max, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running_max
    return adjusted


# --------------------------------------------------------------------------- #
# Benjamini-Hochberg
# --------------------------------------------------------------------------- #
def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg (1995) adjusted p-values (false discovery rate), in the input order.

    Sort ascending; the k-th smallest (1-based) gets m * p / k, then a running
    minimum from the largest down keeps them monotone, capped at 1.  Rejecting
    where the adjusted value is below q keeps the expected share of false
    discoveries at or below q.  Less strict than Holm (which controls the chance
    of *any* false positive); use it for many segments, Holm for a few variants.
    """
    if any(not 0.0 <= p <= 1.0 for p in p_values):
        raise ValueError("p-values must lie in [0, 1]")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running_min = 1.0
    for position, index in enumerate(order):
        rank = m - position  # 1-based rank in ascending order
        running_min = min(running_min, m * p_values[index] / rank)
        adjusted[index] = running_min
    return adjusted
