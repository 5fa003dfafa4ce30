"""Shared building blocks: constants, result dataclasses, the normal distribution, Wilson/Newcombe
intervals, the relative-lift inference every test uses, argument checks and number wording.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import special

from switchboard.analytics.stats_basic import wilson_interval as _vector_wilson

DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8
# GrowthBook's default; the total (both arms) sample size where the
# always-valid interval is narrowest.
DEFAULT_SEQUENTIAL_TUNING_N = 5000.0
# Chi-square's approximation is poor with tiny expected counts; below this many
# expected units in any arm we report "not enough data" instead of a p-value.
MIN_SRM_EXPECTED_UNITS = 8
# Industry convention (GrowthBook, Optimizely, Kohavi): SRM alarms are raised
# at p < 0.001 because the check runs on every experiment every day.
DEFAULT_SRM_THRESHOLD = 0.001

Correction = Literal["holm", "bonferroni", "bh", "none"]
Decision = Literal["ship", "keep running", "stop: no effect likely", "do not ship", "blocked: SRM"]
Direction = Literal["better", "worse", "unclear"]

CHANCE_TO_WIN_EXPLAINED = (
    "Chance to win is the probability that B is truly better than A, given the data so far and "
    "assuming we knew nothing beforehand. It is not 1 - p. A p-value answers a different question: "
    "if A and B were really identical, how surprising would a difference this large be? The two "
    "numbers come from the same data but sit on different scales: a positive result with p = 0.10 "
    "shows about a 95% chance to win (not 90%), and p = 0.05 shows about 97.5%. So a 95% chance to "
    "win is much weaker evidence than 'significant at 95%'. Chance to win also ignores daily peeking "
    "and the number of variants, so the ship / keep-running decision is taken from the confidence "
    "interval; chance to win tells you how likely B is to be at least a little better."
)


# --------------------------------------------------------------------------- #
# Result dataclasses
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class ProportionResult:
    """Treatment vs control on a rate (conversion, delivery, ...).

    Rates and ``relative_lift``/``ci_low``/``ci_high`` are fractions;
    ``abs_lift``/``abs_ci_low``/``abs_ci_high`` are percentage points (Newcombe
    hybrid Wilson score interval, always defined).  Relative fields are None
    when they cannot be computed (control at 0 %, or no variation at all);
    ``note`` says why.  ``alpha`` is the level the intervals were built at.
    """

    control_users: int
    control_conversions: int
    treatment_users: int
    treatment_conversions: int
    control_rate: float
    treatment_rate: float
    relative_lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    chance_to_win: float | None
    abs_lift: float
    abs_ci_low: float
    abs_ci_high: float
    alpha: float
    sequential: bool
    higher_is_better: bool
    note: str


@dataclass(frozen=True)
class RelativeResult:
    """Treatment vs control on a mean or ratio metric (time to convert, cost per conversion).

    ``control_value``/``treatment_value`` are the per-arm means (or ratios) and
    ``abs_diff`` their difference, in the metric's unit; the relative fields are
    fractions.  None means "cannot be computed", explained in ``note``.
    """

    control_value: float | None
    treatment_value: float | None
    abs_diff: float | None
    relative_lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    chance_to_win: float | None
    alpha: float
    sequential: bool
    higher_is_better: bool
    note: str


MetricResult = ProportionResult | RelativeResult


@dataclass(frozen=True)
class MeanStats:
    """One arm of a mean metric: units, sum and sum of squares of the per-unit value."""

    n: int
    sum: float
    sum_squares: float


@dataclass(frozen=True)
class RatioStats:
    """One arm of a ratio metric sum(x) / sum(y), from per-unit x and y (GrowthBook layout).

    Example, cost per conversion: x = cost of the unit's messages, y = the unit's
    conversions; ``sum_xy`` is the sum of per-unit products x*y.
    """

    n: int
    sum_x: float
    sum_x2: float
    sum_y: float
    sum_y2: float
    sum_xy: float


@dataclass(frozen=True)
class Arm:
    """One arm of an A/B/n proportion test; the first arm passed is the control."""

    name: str
    users: int
    conversions: int


@dataclass(frozen=True)
class VariantComparison:
    """One treatment vs the control inside ``compare_variants``.

    ``result`` is built at ``ci_alpha`` (the corrected level), so its interval is
    the multiplicity-widened one; ``result.p_value`` equals ``p_value`` (raw);
    compare ``p_value_adjusted`` with the family-wise alpha.
    """

    control: str
    treatment: str
    result: ProportionResult
    p_value: float | None
    p_value_adjusted: float | None
    ci_alpha: float


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio-mismatch check.  ``ok`` is False only on evidence of a mismatch."""

    p_value: float | None
    ok: bool
    message: str
    counts: tuple[int, ...]
    expected: tuple[float, ...]


@dataclass(frozen=True)
class Verdict:
    """A decision and one sentence a product manager can read out loud."""

    decision: Decision
    sentence: str
    reasons: tuple[str, ...]


# --------------------------------------------------------------------------- #
# Normal-distribution building blocks
# --------------------------------------------------------------------------- #
def normal_cdf(x: float) -> float:
    """Phi(x).  scipy.special.ndtr is a fast ufunc, which keeps simulations quick."""
    return float(special.ndtr(x))


def fixed_critical_z(alpha: float) -> float:
    """Two-sided fixed-horizon critical value z_{1 - alpha/2}."""
    _check_alpha(alpha)
    return float(special.ndtri(1.0 - alpha / 2.0))


def two_sided_p_value(z: float) -> float:
    """2 * (1 - Phi(|z|)), computed as 2 * Phi(-|z|) to keep precision in the tail."""
    return 2.0 * normal_cdf(-abs(z))


def sequential_rho(alpha: float, tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N) -> float:
    """Mixing parameter of the normal-mixture confidence sequence (eq. 161, arXiv:2103.06476v7)."""
    _check_alpha(alpha)
    if tuning_n <= 0:
        raise ValueError("tuning_n must be positive")
    log_alpha = math.log(alpha)
    return math.sqrt((-2.0 * log_alpha + math.log(-2.0 * log_alpha + 1.0)) / tuning_n)


def sequential_critical_z(
    n_total: float, alpha: float, tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N
) -> float:
    """Critical z of the always-valid interval: half-width / standard error.

    From eq. 9 with s2 = se^2 * n the standard error cancels, leaving a factor
    that depends only on the total sample size n, alpha and tuning_n.
    """
    if n_total <= 0:
        raise ValueError("n_total must be positive")
    rho2 = sequential_rho(alpha, tuning_n) ** 2
    n_rho2 = n_total * rho2
    return math.sqrt(2.0 * (n_rho2 + 1.0) / n_rho2 * math.log(math.sqrt(n_rho2 + 1.0) / alpha))


def sequential_p_value(
    z: float, n_total: float, alpha: float, tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N
) -> float:
    """Always-valid two-sided p-value min(1, 1/e-value) (eq. 155, arXiv:2103.06476v7).

    e-value = exp(n rho^2 z^2 / (2 (n rho^2 + 1))) / sqrt(n rho^2 + 1); computed
    in log space because the e-value overflows for strong effects.
    ``alpha`` only sets rho (the same rho as the interval), which is what makes
    p < alpha equivalent to "the interval excludes 0".
    """
    rho2 = sequential_rho(alpha, tuning_n) ** 2
    n_rho2 = n_total * rho2
    log_e_value = n_rho2 * z * z / (2.0 * (n_rho2 + 1.0)) - 0.5 * math.log(n_rho2 + 1.0)
    return 1.0 if log_e_value <= 0 else math.exp(-log_e_value)


def critical_z(
    alpha: float,
    n_total: float,
    sequential: bool = False,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
) -> float:
    """The multiplier of the standard error for a two-sided interval at level alpha."""
    if sequential:
        return sequential_critical_z(n_total, alpha, tuning_n)
    return fixed_critical_z(alpha)


def chance_to_win(estimate: float, se: float, higher_is_better: bool = True) -> float:
    """P(true lift is on the good side | data), flat prior, normal posterior N(estimate, se^2)."""
    if se <= 0:
        raise ValueError("se must be positive")
    z = estimate / se
    return normal_cdf(z if higher_is_better else -z)


def relative_lift_variance(mean_c: float, var_mean_c: float, mean_t: float, var_mean_t: float) -> float:
    """Delta-method variance of mean_t / mean_c - 1 for independent arms.

    ``var_mean_*`` are variances of the arm *estimates* (already divided by n).
    """
    return var_mean_t / mean_c**2 + var_mean_c * mean_t**2 / mean_c**4


# --------------------------------------------------------------------------- #
# Wilson / Newcombe intervals
# --------------------------------------------------------------------------- #
def wilson_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for one proportion, without continuity correction.

    The scalar face of ``analytics.stats_basic.wilson_interval`` (one implementation),
    which is exact at 0 and n successes.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    low, high = _vector_wilson(successes, n, z)
    return float(low), float(high)


def newcombe_interval(
    treatment: tuple[int, int], control: tuple[int, int], z: float
) -> tuple[float, float, float]:
    """Newcombe (1998) method 10, hybrid Wilson score: (difference, low, high) of p_t - p_c.

    Stays inside [-1, 1] and is defined at 0 % and 100 %, unlike the Wald
    interval, which is why the absolute result never fails on delivery data.
    Arms are ``(users, conversions)``.
    """
    (n_t, x_t), (n_c, x_c) = treatment, control
    p_t, p_c = x_t / n_t, x_c / n_c
    low_t, high_t = wilson_interval(x_t, n_t, z)
    low_c, high_c = wilson_interval(x_c, n_c, z)
    diff = p_t - p_c
    low = diff - math.sqrt((p_t - low_t) ** 2 + (high_c - p_c) ** 2)
    high = diff + math.sqrt((high_t - p_t) ** 2 + (p_c - low_c) ** 2)
    return diff, low, high


# --------------------------------------------------------------------------- #
# Shared relative-lift inference
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class _Relative:
    lift: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    chance_to_win: float | None = None


def _relative_inference(
    mean_c: float,
    var_mean_c: float,
    mean_t: float,
    var_mean_t: float,
    *,
    n_total: int,
    alpha: float,
    sequential: bool,
    tuning_n: float,
    higher_is_better: bool,
) -> tuple[_Relative, list[str]]:
    """Relative lift, interval, p-value and chance to win, or Nones plus the reason."""
    if mean_c <= 0:
        reason = (
            "Control is 0, so a relative lift is undefined (division by zero); relative fields are "
            "empty - read the absolute difference instead."
            if mean_c == 0
            else "Control is negative, so a relative lift has no clear direction; relative fields are empty."
        )
        return _Relative(), [reason]
    lift = mean_t / mean_c - 1.0
    # Rounding in sum-of-squares inputs can give a tiny negative variance.
    se = math.sqrt(max(0.0, relative_lift_variance(mean_c, var_mean_c, mean_t, var_mean_t)))
    if se == 0.0 or not math.isfinite(se):
        reason = (
            "Neither arm varies (every unit has the same value), so the relative interval, p-value "
            "and chance to win cannot be estimated."
        )
        return _Relative(lift=lift), [reason]
    z = lift / se
    half_width = critical_z(alpha, n_total, sequential, tuning_n) * se
    p_value = sequential_p_value(z, n_total, alpha, tuning_n) if sequential else two_sided_p_value(z)
    return (
        _Relative(
            lift=lift,
            ci_low=lift - half_width,
            ci_high=lift + half_width,
            p_value=p_value,
            chance_to_win=chance_to_win(lift, se, higher_is_better),
        ),
        [],
    )


def _sequential_note(sequential: bool) -> list[str]:
    if not sequential:
        return []
    return ["Sequential (always-valid) interval: safe to check every day, at the price of a wider interval."]


def _check_rate(rate: float) -> None:
    if not 0 < rate < 1:
        raise ValueError("baseline_rate must be strictly between 0 and 1")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError("alpha must be strictly between 0 and 1")


def _level(alpha: float) -> str:
    return f"{100 * (1 - alpha):.4g}%"


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _signed_pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


def _probability(p: float) -> str:
    # "100%" would overstate certainty; the normal approximation can't back it.
    if p > 0.99:
        return ">99%"
    if p < 0.01:
        return "<1%"
    return f"{100 * p:.0f}%"


def _join(names: Sequence[str]) -> str:
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
