"""Small, pure statistics used by the analytics modules (no I/O, no SQL).

SQL returns per-group counts and sums; these functions turn them into rates,
intervals and tests. All are vectorised over numpy arrays (or scalars) so a
frame of a few thousand groups costs microseconds, and each is checked against
known numbers in tests/test_analytics_stats.py.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

Z95 = 1.959963984540054


def _arr(x: object) -> np.ndarray:
    return np.asarray(x, dtype="float64")


def safe_div(num: object, den: object) -> np.ndarray:
    """num / den, NaN where den is 0 or missing (never a warning, never inf)."""
    n, d = _arr(num), _arr(den)
    out = np.full(np.broadcast(n, d).shape, np.nan)
    ok = np.isfinite(d) & (d != 0)
    np.divide(n, d, out=out, where=ok)
    return out


def wilson_interval(successes: object, trials: object, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (NaN where trials == 0).

    Better than the normal approximation near 0 and 1 and for small n, which is where
    delivery rates of small countries live.
    """
    k, n = _arr(successes), _arr(trials)
    p = safe_div(k, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 or n successes the bound is exactly 0 or 1; subtraction leaves ~1e-17 of rounding.
    low = np.where(k <= 0, 0.0, centre - half)
    high = np.where(k >= n, 1.0, centre + half)
    bad = ~(n > 0)
    low = np.where(bad, np.nan, np.clip(low, 0.0, 1.0))
    high = np.where(bad, np.nan, np.clip(high, 0.0, 1.0))
    return low, high


@dataclass(frozen=True)
class ProportionTest:
    """Two-proportion z test of p1 (recent) against p0 (baseline)."""

    p1: np.ndarray
    p0: np.ndarray
    z: np.ndarray
    p_value: np.ndarray


def two_proportion_z(k1: object, n1: object, k0: object, n0: object, alternative: str = "two-sided") -> ProportionTest:
    """Pooled two-proportion z test, vectorised.

    ``alternative``: "two-sided", "greater" (p1 > p0) or "less" (p1 < p0).
    p_value is NaN where either sample is empty; z is 0 where the pooled
    proportion is 0 or 1 (no variation: nothing to test).
    """
    k1a, n1a, k0a, n0a = _arr(k1), _arr(n1), _arr(k0), _arr(n0)
    p1, p0 = safe_div(k1a, n1a), safe_div(k0a, n0a)
    pooled = safe_div(k1a + k0a, n1a + n0a)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1a + 1 / n0a))
    z = np.where(se > 0, safe_div(p1 - p0, se), 0.0)
    if alternative == "two-sided":
        p = 2 * stats.norm.sf(np.abs(z))
    elif alternative == "greater":
        p = stats.norm.sf(z)
    elif alternative == "less":
        p = stats.norm.cdf(z)
    else:
        raise ValueError(f"alternative must be two-sided, greater or less, not {alternative!r}")
    empty = ~((n1a > 0) & (n0a > 0))
    p = np.where(empty, np.nan, p)
    return ProportionTest(p1=p1, p0=p0, z=np.where(empty, np.nan, z), p_value=p)


def fisher_one_sided(k1: object, n1: object, k0: object, n0: object, alternative: str = "greater") -> ProportionTest:
    """One-sided Fisher exact test of p1 (k1 of n1) against p0 (k0 of n0), vectorised (the hypergeometric tail
    of k1 given the pooled count): "greater" (p1 > p0) or "less" (p1 < p0). ``z`` is the pooled z statistic.

    Exact where the z test is not: with a rare outcome and a small recent sample (18 failures of 99 SMS
    against 7 %), the normal tail is several times too small (9e-5 against the exact 7e-4), and over
    thousands of such cells checked day after day that turns noise into alerts.
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be greater or less, not {alternative!r}")
    k1a, n1a, k0a, n0a = _arr(k1), _arr(n1), _arr(k0), _arr(n0)
    z = two_proportion_z(k1a, n1a, k0a, n0a, alternative)
    total, hits = n1a + n0a, k1a + k0a
    with np.errstate(invalid="ignore"):
        if alternative == "greater":
            p = stats.hypergeom.sf(k1a - 1, total, hits, n1a)
        else:
            p = stats.hypergeom.cdf(k1a, total, hits, n1a)
    empty = ~((n1a > 0) & (n0a > 0))
    p = np.where(empty, np.nan, np.clip(p, 0.0, 1.0))
    return ProportionTest(p1=z.p1, p0=z.p0, z=z.z, p_value=p)


def welch_z(mean1: object, var1: object, n1: object, mean0: object, var0: object, n0: object) -> np.ndarray:
    """Two-sided p-value of a difference in means (large-sample Welch z test)."""
    m1, v1, c1, m0, v0, c0 = (_arr(x) for x in (mean1, var1, n1, mean0, var0, n0))
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(v1 / c1 + v0 / c0)
    z = safe_div(m1 - m0, se)
    p = 2 * stats.norm.sf(np.abs(z))
    same = (se == 0) & (m1 == m0)
    p = np.where(same, 1.0, p)
    p = np.where((se == 0) & (m1 != m0), 0.0, p)
    return np.where((c1 > 1) & (c0 > 1), p, np.nan)


def benjamini_hochberg(p_values: object) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values); NaN stays NaN and is not counted."""
    p = _arr(p_values).ravel()
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    q[ok] = out
    return q


def relative_change(current: object, previous: object) -> np.ndarray:
    """(current - previous) / previous, NaN when previous is 0."""
    c, p = _arr(current), _arr(previous)
    return safe_div(c - p, p)


def change_point(successes: object, trials: object) -> int | None:
    """Index of the first point after the most likely single change in a binomial rate.

    Maximises the two-segment binomial log-likelihood over every split; None when
    the series is too short or flat. Used to date an incident ("since 12 Nov").
    """
    k, n = _arr(successes), _arr(trials)
    if k.size < 2 or n.sum() == 0:
        return None
    ck, cn = np.cumsum(k), np.cumsum(n)
    tk, tn = ck[-1], cn[-1]

    def ll(kk: np.ndarray, nn: np.ndarray) -> np.ndarray:
        p = safe_div(kk, nn)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(kk > 0, kk * np.log(p), 0.0)
            b = np.where(nn - kk > 0, (nn - kk) * np.log1p(-p), 0.0)
        return np.nan_to_num(a + b)

    left = ll(ck[:-1], cn[:-1])
    right = ll(tk - ck[:-1], tn - cn[:-1])
    valid = (cn[:-1] > 0) & (tn - cn[:-1] > 0)
    if not valid.any():
        return None
    score = np.where(valid, left + right, -np.inf)
    return int(np.argmax(score)) + 1


def mean_change_point(sums: object, counts: object) -> int | None:
    """Index of the first point after the most likely single shift in a mean (weighted by counts).

    Maximises the between-segment sum of squares N_L (m_L - m)^2 + N_R (m_R - m)^2; None
    when the series is too short or empty. Used to date a cost rise.
    """
    s, n = _arr(sums), _arr(counts)
    if s.size < 2 or n.sum() == 0:
        return None
    cs, cn = np.cumsum(s)[:-1], np.cumsum(n)[:-1]
    ts, tn = s.sum(), n.sum()
    m = ts / tn
    left, right = safe_div(cs, cn), safe_div(ts - cs, tn - cn)
    score = cn * (left - m) ** 2 + (tn - cn) * (right - m) ** 2
    score = np.where((cn > 0) & (tn - cn > 0), np.nan_to_num(score), -np.inf)
    if not np.isfinite(score).any():
        return None
    return int(np.argmax(score)) + 1


def quantiles_from_counts(keys: np.ndarray, x: np.ndarray, n: np.ndarray,
                          qs: tuple[float, ...] = (0.5, 0.9)) -> dict[object, tuple[float, ...]]:
    """``quantile_cont`` of each key's values given as (key, value, count) rows sorted by key then value,
    plus the mean and the count: key -> (q_1, …, q_k, mean, count).

    DuckDB's rule for n values x_0 <= … <= x_(n-1): h = (n - 1) q, then
    x_floor(h) + (h - floor(h)) (x_ceil(h) - x_floor(h)); the value at rank r is the smallest x whose
    cumulative count exceeds r. Exact ranks, no sketch; the interpolation may differ from DuckDB's own
    in the last bit (tests compare at a relative 1e-12). Whole-number values (seconds) give an exact
    mean while their sum stays below 2**53.
    """
    out: dict[object, tuple[float, ...]] = {}
    if len(keys) == 0:
        return out
    changes = np.flatnonzero(keys[1:] != keys[:-1]) + 1  # object arrays: None == None, None != 'US'
    breaks = [0, *changes.tolist(), len(keys)]
    for a, b in itertools.pairwise(breaks):
        xs = x[a:b].astype(np.float64)
        counts = n[a:b].astype(np.int64)
        cum = np.cumsum(counts)
        total = int(cum[-1])
        values = []
        for q in qs:
            h = float(total - 1) * q
            lo = float(xs[np.searchsorted(cum, math.floor(h), side="right")])
            hi = float(xs[np.searchsorted(cum, math.ceil(h), side="right")])
            values.append(lo + (h - math.floor(h)) * (hi - lo))
        out[keys[a]] = (*values, float(np.dot(xs, counts.astype(np.float64))) / float(total), total)
    return out
