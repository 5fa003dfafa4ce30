"""A/B statistics engine: pure functions over small frozen dataclasses.

SQL (the experiments data-loading module) returns per-arm counts and sums; this
module turns them into lifts, intervals, p-values, chance to win, SRM checks,
power calculations and a plain-English verdict.  Nothing here touches a
database, Streamlit or the clock, so every number can be tested against known
values.  The design follows GrowthBook's stats engine (gbstats) but depends only
on scipy.

Conventions used throughout
---------------------------
* **Relative lift** is a fraction: ``0.041`` means +4.1 %.  It is
  ``treatment / control - 1`` and its variance comes from the delta method with
  unpooled per-arm variances (``Var(B/A) ~ Var(B)/A^2 + B^2 Var(A)/A^4``).
* **Absolute lift** of a proportion (``abs_lift``, ``abs_ci_low``,
  ``abs_ci_high``) is in **percentage points**: ``1.2`` means +1.2 pp.
* **Normal (z) reference, not Student t.**  Delivery experiments have
  thousands of units per arm, where t and z agree to 4 decimals; using z keeps
  the p-value, the interval and chance to win on one scale
  (chance to win = Phi(z)).
* **Every interval test is two-sided** and ``p_value < alpha`` exactly when the
  interval at level ``alpha`` excludes 0 (also in sequential mode).
* **Sequential (always-valid) mode** uses the normal-mixture confidence
  sequence of Howard et al. 2021 / Waudby-Smith et al. 2023 (eqs. 9, 155, 161 of
  arXiv:2103.06476v7), exactly as GrowthBook does: the interval half-width is
  ``sqrt(s2) * sqrt(2 (n rho^2 + 1) / (n^2 rho^2) * ln(sqrt(n rho^2 + 1) / alpha))``
  with ``s2 = se^2 * n`` and ``n`` = units in both arms, and the mixing
  parameter ``rho = sqrt((-2 ln alpha + ln(-2 ln alpha + 1)) / N)``.  ``N``
  (``tuning_n``, default 5000 like GrowthBook) is the total sample size at which
  the interval is tightest: set it near the expected final size.  Because the
  half-width is ``se`` times a factor that depends only on ``n``, sequential
  mode is "a fixed test with a bigger critical z"; we use that z for the
  relative interval and for the Newcombe absolute interval alike.  The p-value
  is the always-valid one, ``min(1, 1 / e-value)``; it crosses ``alpha``
  exactly where the interval starts to exclude 0.  Chance to win is *not*
  adjusted (it is a posterior probability, see ``CHANCE_TO_WIN_EXPLAINED``).

Second round (issue 19), each following gbstats 0.8.0 where it has the method:

* ``bayesian_proportion_test``: Gaussian prior on the relative lift (GrowthBook's
  default N(0, 0.3^2)), posterior mean, credible interval, chance to win and the
  risk (expected relative loss) of shipping each arm, as ``EffectBayesianABTest``.
* ``cuped_test``: CUPED / regression adjustment on a pre-period covariate with
  theta pooled over both arms (``compute_theta``); the unadjusted lift beside it.
* ``benjamini_hochberg`` beside ``holm_adjust``; ``compare_variants(correction="bh")``.
* ``heterogeneity_test``: Cochran's Q and I^2 across segments, per-segment lifts
  corrected for the number of segments (not in gbstats).
* ``decision``: Ship / Discuss / Don't ship with a reason and the days still
  needed; its rules are ``DECISION_RULES`` (quoted on the page).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from scipy import optimize, special, stats

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


# --------------------------------------------------------------------------- #
# Proportions
# --------------------------------------------------------------------------- #
def proportion_test(
    control: tuple[int, int],
    treatment: tuple[int, int],
    alpha: float = DEFAULT_ALPHA,
    *,
    sequential: bool = False,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
    higher_is_better: bool = True,
) -> ProportionResult:
    """Compare two rates; each arm is ``(users, conversions)``.

    Relative lift: delta method with unpooled Bernoulli variances p(1 - p)
    (GrowthBook).  p-value: two-sided, from the same z = lift / se, so it agrees
    with the interval.  Chance to win: Phi(lift / se) (flat prior, normal
    approximation), flipped when ``higher_is_better`` is False (e.g. an error
    rate).  Absolute lift: Newcombe hybrid Wilson score interval in percentage
    points, at the same critical z (so it is widened in sequential mode too).

    At 0 % or 100 % the absolute result is always computed; relative fields are
    None when the control rate is 0 or neither arm varies, and ``note`` says so.

    Raises ValueError for an arm without users or with conversions outside [0, users].
    """
    _check_alpha(alpha)
    (n_c, x_c), (n_t, x_t) = _checked_arm(control, "control"), _checked_arm(treatment, "treatment")
    p_c, p_t = x_c / n_c, x_t / n_t
    relative, notes = _relative_inference(
        p_c,
        p_c * (1.0 - p_c) / n_c,
        p_t,
        p_t * (1.0 - p_t) / n_t,
        n_total=n_c + n_t,
        alpha=alpha,
        sequential=sequential,
        tuning_n=tuning_n,
        higher_is_better=higher_is_better,
    )
    z = critical_z(alpha, n_c + n_t, sequential, tuning_n)
    diff, low, high = newcombe_interval((n_t, x_t), (n_c, x_c), z)
    notes += _boundary_notes(
        control=(n_c, x_c), treatment=(n_t, x_t), has_relative_ci=relative.ci_low is not None
    )
    notes += _sequential_note(sequential)
    return ProportionResult(
        control_users=n_c,
        control_conversions=x_c,
        treatment_users=n_t,
        treatment_conversions=x_t,
        control_rate=p_c,
        treatment_rate=p_t,
        relative_lift=relative.lift,
        ci_low=relative.ci_low,
        ci_high=relative.ci_high,
        p_value=relative.p_value,
        chance_to_win=relative.chance_to_win,
        abs_lift=100.0 * diff,
        abs_ci_low=100.0 * low,
        abs_ci_high=100.0 * high,
        alpha=alpha,
        sequential=sequential,
        higher_is_better=higher_is_better,
        note=" ".join(notes),
    )


def _checked_arm(arm: tuple[int, int], label: str) -> tuple[int, int]:
    users, conversions = arm
    if users <= 0:
        raise ValueError(f"{label} has no users; a rate needs at least one")
    if not 0 <= conversions <= users:
        raise ValueError(f"{label} conversions ({conversions}) must be between 0 and users ({users})")
    return int(users), int(conversions)


def _boundary_notes(
    *, control: tuple[int, int], treatment: tuple[int, int], has_relative_ci: bool
) -> list[str]:
    """Warn where the normal approximation behind the relative interval is shaky."""
    notes = []
    for label, (n, x) in (("Control", control), ("Treatment", treatment)):
        if x in (0, n):
            rate = "0%" if x == 0 else "100%"
            notes.append(f"{label} is at {rate} ({x} of {n}).")
        elif min(x, n - x) < 5:
            notes.append(f"{label} has fewer than 5 {'conversions' if x < n - x else 'non-conversions'}.")
    if notes and has_relative_ci:
        notes.append(
            "Near 0% or 100% the normal approximation understates uncertainty of the relative lift; "
            "the absolute (Newcombe) interval stays reliable."
        )
    return notes


# --------------------------------------------------------------------------- #
# Means and ratios
# --------------------------------------------------------------------------- #
def mean_test(
    control: MeanStats,
    treatment: MeanStats,
    alpha: float = DEFAULT_ALPHA,
    *,
    sequential: bool = False,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
    higher_is_better: bool = True,
) -> RelativeResult:
    """Relative lift of a mean metric (e.g. time to convert; pass higher_is_better=False).

    Per-arm sample variance (n - 1 denominator) from n, sum, sum of squares;
    Welch-style unpooled variances combined by the delta method; z reference.
    Raises ValueError when an arm has fewer than 2 units (no variance).
    """
    _check_alpha(alpha)
    mean_c, var_c = _mean_and_variance(control, "control")
    mean_t, var_t = _mean_and_variance(treatment, "treatment")
    relative, notes = _relative_inference(
        mean_c,
        var_c / control.n,
        mean_t,
        var_t / treatment.n,
        n_total=control.n + treatment.n,
        alpha=alpha,
        sequential=sequential,
        tuning_n=tuning_n,
        higher_is_better=higher_is_better,
    )
    notes += _small_sample_note(control.n, treatment.n) + _sequential_note(sequential)
    return _relative_result(mean_c, mean_t, relative, notes, alpha, sequential, higher_is_better)


def ratio_test(
    control: RatioStats,
    treatment: RatioStats,
    alpha: float = DEFAULT_ALPHA,
    *,
    sequential: bool = False,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
    higher_is_better: bool = True,
) -> RelativeResult:
    """Relative lift of a ratio metric sum(x) / sum(y) (e.g. cost per conversion).

    Each arm's ratio R = mean_x / mean_y gets the delta-method variance
    (var_x / my^2 + var_y mx^2 / my^4 - 2 cov_xy mx / my^3) / n, using the
    per-unit covariance of x and y (units are the randomisation unit, so x and y
    of one unit are correlated).  The two independent arm ratios are then
    combined like means.  For cost, pass ``higher_is_better=False`` so chance to
    win is P(cost went down).  An arm with sum(y) = 0 has no ratio: relative
    fields are None and ``note`` says why.
    """
    _check_alpha(alpha)
    ratio_c, var_ratio_c, note_c = _ratio_and_variance(control, "control")
    ratio_t, var_ratio_t, note_t = _ratio_and_variance(treatment, "treatment")
    notes = note_c + note_t
    if ratio_c is None or ratio_t is None:
        relative = _Relative()
    else:
        relative, more = _relative_inference(
            ratio_c,
            var_ratio_c,
            ratio_t,
            var_ratio_t,
            n_total=control.n + treatment.n,
            alpha=alpha,
            sequential=sequential,
            tuning_n=tuning_n,
            higher_is_better=higher_is_better,
        )
        notes += more
    notes += _small_sample_note(control.n, treatment.n) + _sequential_note(sequential)
    return _relative_result(ratio_c, ratio_t, relative, notes, alpha, sequential, higher_is_better)


def _mean_and_variance(arm: MeanStats, label: str) -> tuple[float, float]:
    if arm.n < 2:
        raise ValueError(f"{label} needs at least 2 units to estimate a variance")
    mean = arm.sum / arm.n
    variance = (arm.sum_squares - arm.sum * arm.sum / arm.n) / (arm.n - 1)
    return mean, max(0.0, variance)


def _ratio_and_variance(arm: RatioStats, label: str) -> tuple[float | None, float, list[str]]:
    """Arm ratio and the variance of its estimate (already divided by n)."""
    if arm.n < 2:
        raise ValueError(f"{label} needs at least 2 units to estimate a variance")
    n = arm.n
    mean_x, mean_y = arm.sum_x / n, arm.sum_y / n
    if mean_y == 0:
        return (
            None,
            0.0,
            [f"The {label} denominator is 0 (e.g. no conversions yet), so its ratio is undefined."],
        )
    var_x = (arm.sum_x2 - arm.sum_x * arm.sum_x / n) / (n - 1)
    var_y = (arm.sum_y2 - arm.sum_y * arm.sum_y / n) / (n - 1)
    cov_xy = (arm.sum_xy - arm.sum_x * arm.sum_y / n) / (n - 1)
    per_unit = var_x / mean_y**2 + var_y * mean_x**2 / mean_y**4 - 2.0 * cov_xy * mean_x / mean_y**3
    return mean_x / mean_y, max(0.0, per_unit) / n, []


def _small_sample_note(n_c: int, n_t: int) -> list[str]:
    if min(n_c, n_t) >= 30:
        return []
    return ["Fewer than 30 units in an arm: the normal approximation is rough."]


def _relative_result(
    value_c: float | None,
    value_t: float | None,
    relative: _Relative,
    notes: list[str],
    alpha: float,
    sequential: bool,
    higher_is_better: bool,
) -> RelativeResult:
    abs_diff = value_t - value_c if value_c is not None and value_t is not None else None
    return RelativeResult(
        control_value=value_c,
        treatment_value=value_t,
        abs_diff=abs_diff,
        relative_lift=relative.lift,
        ci_low=relative.ci_low,
        ci_high=relative.ci_high,
        p_value=relative.p_value,
        chance_to_win=relative.chance_to_win,
        alpha=alpha,
        sequential=sequential,
        higher_is_better=higher_is_better,
        note=" ".join(notes),
    )


# --------------------------------------------------------------------------- #
# A/B/n
# --------------------------------------------------------------------------- #
def compare_variants(
    arms: Sequence[Arm],
    alpha: float = DEFAULT_ALPHA,
    correction: Correction = "holm",
    *,
    sequential: bool = False,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
    higher_is_better: bool = True,
) -> list[VariantComparison]:
    """Each treatment (arms[1:]) vs the control (arms[0]), corrected for multiple variants.

    p-values: raw per-comparison p-values, then Holm (default), Bonferroni or
    Benjamini-Hochberg ("bh", false discovery rate) adjusted across the
    m = len(arms) - 1 comparisons; a comparison whose p-value cannot be
    computed counts as p = 1 (conservative) and reports None.

    Intervals: built at alpha / m (Bonferroni) for "holm", "bonferroni" and
    "bh".  Holm and BH have no simple matching interval; the Bonferroni one has
    simultaneous coverage and is conservative: if it excludes 0, the Holm- and
    BH-adjusted p-values are below alpha too (both never exceed Bonferroni), so
    the verdict, which reads the interval, never ships on a non-significant
    adjusted result.  ``correction="none"`` uses alpha unchanged.
    """
    if len(arms) < 2:
        raise ValueError("need a control and at least one treatment")
    if correction not in ("holm", "bonferroni", "bh", "none"):
        raise ValueError(f"unknown correction {correction!r}")
    m = len(arms) - 1
    ci_alpha = alpha if correction == "none" else alpha / m
    control = arms[0]
    results = [
        proportion_test(
            (control.users, control.conversions),
            (arm.users, arm.conversions),
            ci_alpha,
            sequential=sequential,
            tuning_n=tuning_n,
            higher_is_better=higher_is_better,
        )
        for arm in arms[1:]
    ]
    raw = [r.p_value for r in results]
    adjusted = _adjust(raw, correction)
    return [
        VariantComparison(
            control=control.name,
            treatment=arm.name,
            result=result,
            p_value=p,
            p_value_adjusted=p_adj,
            ci_alpha=ci_alpha,
        )
        for arm, result, p, p_adj in zip(arms[1:], results, raw, adjusted, strict=True)
    ]


def _adjust(p_values: Sequence[float | None], correction: Correction) -> list[float | None]:
    filled = [1.0 if p is None else p for p in p_values]
    if correction == "holm":
        adjusted = holm_adjust(filled)
    elif correction == "bh":
        adjusted = benjamini_hochberg(filled)
    elif correction == "bonferroni":
        adjusted = [min(1.0, p * len(filled)) for p in filled]
    else:
        adjusted = filled
    return [None if p is None else a for p, a in zip(p_values, adjusted, strict=True)]


# --------------------------------------------------------------------------- #
# Sample ratio mismatch
# --------------------------------------------------------------------------- #
def srm_p_value(counts: Sequence[int], weights: Sequence[float]) -> float | None:
    """Chi-square goodness-of-fit p-value of observed units per arm vs the planned split.

    ``weights`` are normalised (``[1, 1]`` and ``[0.5, 0.5]`` are the same).
    Returns None when any arm *expects* fewer than ``MIN_SRM_EXPECTED_UNITS``
    (8) units, where the chi-square approximation is unreliable.  We test the
    expected count rather than the observed one on purpose: an arm that
    received 0 of 1000 users is the most blatant mismatch there is and must be
    flagged, not skipped.
    """
    expected = _expected_counts(counts, weights)
    if min(expected) < MIN_SRM_EXPECTED_UNITS:
        return None
    statistic = sum((o - e) ** 2 / e for o, e in zip(counts, expected, strict=True))
    return float(stats.chi2.sf(statistic, df=len(counts) - 1))


def srm_check(
    counts: Sequence[int], weights: Sequence[float], threshold: float = DEFAULT_SRM_THRESHOLD
) -> SrmResult:
    """SRM p-value plus the flag and message the verdict uses; ok=False blocks shipping."""
    expected = tuple(_expected_counts(counts, weights))
    p_value = srm_p_value(counts, weights)
    observed = tuple(int(c) for c in counts)
    split = " / ".join(f"{c:,}" for c in observed)
    planned = " / ".join(f"{e:,.0f}" for e in expected)
    if p_value is None:
        message = (
            f"Too few units to check the traffic split yet ({split}); "
            f"checked once every arm expects at least {MIN_SRM_EXPECTED_UNITS}."
        )
        return SrmResult(None, True, message, observed, expected)
    if p_value < threshold:
        message = (
            f"Sample ratio mismatch: got {split} units, expected about {planned} (p = {p_value:.2g}). "
            "Assignment or logging is broken, so the results cannot be trusted; do not ship until it is fixed."
        )
        return SrmResult(p_value, False, message, observed, expected)
    return SrmResult(
        p_value, True, f"Traffic split matches the plan ({split}; p = {p_value:.2g}).", observed, expected
    )


def _expected_counts(counts: Sequence[int], weights: Sequence[float]) -> list[float]:
    if len(counts) != len(weights) or len(counts) < 2:
        raise ValueError("need one weight per arm and at least two arms")
    if any(w <= 0 for w in weights):
        raise ValueError("planned weights must be positive")
    if any(c < 0 for c in counts):
        raise ValueError("counts cannot be negative")
    total, weight_sum = sum(counts), sum(weights)
    return [total * w / weight_sum for w in weights]


# --------------------------------------------------------------------------- #
# Power, minimum detectable effect, days needed
# --------------------------------------------------------------------------- #
def relative_lift_unit_variance(baseline_rate: float, mde_relative: float) -> float:
    """n * Var(relative lift) for equal arms when the treatment rate is baseline * (1 + mde).

    The same delta-method variance the analysis uses, evaluated under the
    alternative (GrowthBook's power calculator does the same).
    """
    p_c = baseline_rate
    p_t = baseline_rate * (1.0 + mde_relative)
    return relative_lift_variance(p_c, p_c * (1.0 - p_c), p_t, p_t * (1.0 - p_t))


def required_sample_size(
    baseline_rate: float,
    mde_relative: float,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    n_variants: int = 2,
    *,
    sequential: bool = False,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
) -> int:
    """Users per arm to detect a relative lift ``mde_relative`` with the given power.

    Fixed horizon: n = (z_{1-alpha'/2} + z_{power})^2 * s^2 / mde^2, where s^2 is
    ``relative_lift_unit_variance`` and alpha' = alpha / (n_variants - 1)
    (Bonferroni across the treatment arms, matching ``compare_variants``'
    intervals).  Sequential: the same equation with the always-valid critical z
    at the total sample 2n, solved numerically.  Two-sided; the tiny chance of
    rejecting in the wrong direction is ignored, as in the textbook formula.
    """
    return math.ceil(
        _users_needed(baseline_rate, mde_relative, alpha, power, n_variants, sequential, tuning_n)
    )


def minimum_detectable_effect(
    baseline_rate: float,
    users_per_arm: int,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    n_variants: int = 2,
    *,
    sequential: bool = False,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
) -> float | None:
    """Smallest positive relative lift detectable with ``users_per_arm`` (inverse of the above).

    None when there are no users, or when even a jump to a 100 % rate would
    not be detected with that many users.
    """
    _check_rate(baseline_rate)
    if users_per_arm <= 0:
        return None
    largest = (1.0 - baseline_rate) / baseline_rate  # treatment at 100 %

    def excess(mde: float) -> float:
        return (
            _users_needed(baseline_rate, mde, alpha, power, n_variants, sequential, tuning_n) - users_per_arm
        )

    if excess(largest) > 0:
        return None
    smallest = largest * 1e-9
    if excess(smallest) <= 0:
        return smallest
    return float(optimize.brentq(excess, smallest, largest, xtol=1e-12, rtol=1e-10))


def days_needed(
    baseline_rate: float,
    mde_relative: float,
    users_so_far_per_arm: float,
    days_so_far: float,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    n_variants: int = 2,
    *,
    sequential: bool = False,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
) -> int | None:
    """More whole days needed at the traffic seen so far: 0 if already enough, None if no traffic."""
    if users_so_far_per_arm <= 0 or days_so_far <= 0:
        return None
    needed = required_sample_size(
        baseline_rate, mde_relative, alpha, power, n_variants, sequential=sequential, tuning_n=tuning_n
    )
    missing = needed - users_so_far_per_arm
    if missing <= 0:
        return 0
    return math.ceil(missing / (users_so_far_per_arm / days_so_far))


def _users_needed(
    baseline_rate: float,
    mde_relative: float,
    alpha: float,
    power: float,
    n_variants: int,
    sequential: bool,
    tuning_n: float,
) -> float:
    """Continuous users-per-arm solution; callers round up."""
    _check_rate(baseline_rate)
    _check_alpha(alpha)
    if not 0 < power < 1:
        raise ValueError("power must be between 0 and 1")
    if n_variants < 2:
        raise ValueError("n_variants counts the control too, so it is at least 2")
    if mde_relative == 0 or not 0 < baseline_rate * (1 + mde_relative) <= 1:
        raise ValueError("mde_relative must be non-zero and keep the treatment rate in (0, 1]")
    per_comparison_alpha = alpha / (n_variants - 1)
    effect_in_se_units = abs(mde_relative) / math.sqrt(
        relative_lift_unit_variance(baseline_rate, mde_relative)
    )
    z_power = float(special.ndtri(power))
    fixed_n = ((fixed_critical_z(per_comparison_alpha) + z_power) / effect_in_se_units) ** 2
    if not sequential:
        return fixed_n

    def shortfall(n: float) -> float:
        # Positive once sqrt(n) * effect / s clears the always-valid boundary plus the power margin.
        return (
            math.sqrt(n) * effect_in_se_units
            - sequential_critical_z(2 * n, per_comparison_alpha, tuning_n)
            - z_power
        )

    low, high = fixed_n, 2.0 * fixed_n  # the sequential boundary is always wider, so n >= fixed_n
    while shortfall(high) < 0:
        low, high = high, 2.0 * high
    return float(optimize.brentq(shortfall, low, high, xtol=1e-6))


def _check_rate(rate: float) -> None:
    if not 0 < rate < 1:
        raise ValueError("baseline_rate must be strictly between 0 and 1")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError("alpha must be strictly between 0 and 1")


# --------------------------------------------------------------------------- #
# Verdict
# --------------------------------------------------------------------------- #
def effect_direction(result: MetricResult) -> Direction:
    """Classify an effect: better / worse only when its interval lies entirely on one side of 0.

    For proportions the relative interval (when it exists) and the absolute
    Newcombe interval must agree; that protects against the over-narrow
    relative interval at 0 % / 100 % rates while changing nothing elsewhere.
    """
    intervals = []
    if result.ci_low is not None and result.ci_high is not None:
        intervals.append((result.ci_low, result.ci_high))
    if isinstance(result, ProportionResult):
        intervals.append((result.abs_ci_low, result.abs_ci_high))
    if not intervals:
        return "unclear"
    if all(low > 0 for low, _ in intervals):
        return "better" if result.higher_is_better else "worse"
    if all(high < 0 for _, high in intervals):
        return "worse" if result.higher_is_better else "better"
    return "unclear"


def verdict(
    primary: MetricResult,
    *,
    guardrails: Mapping[str, MetricResult] | None = None,
    srm: SrmResult | None = None,
    days_more: int | None = None,
    mde_relative: float | None = None,
    metric_name: str = "conversion",
    control_name: str = "A",
    treatment_name: str = "B",
) -> Verdict:
    """A decision and sentence from the primary result, guardrails, SRM and the days left.

    Rules, first match wins:

    1. SRM check failed -> "blocked: SRM" (the numbers cannot be trusted).
    2. A guardrail is hurt (its interval lies entirely on its bad side) -> "do not ship".
    3. Primary metric's interval entirely on the good side -> "ship".
    4. Primary metric's interval entirely on the bad side -> "do not ship".
    5. Inconclusive and either the planned sample is reached (``days_more == 0``)
       or the interval sits inside (-mde, +mde), i.e. any effect is smaller
       than the one we care about -> "stop: no effect likely".
    6. Otherwise -> "keep running", with the days left when known.

    ``days_more`` comes from ``days_needed``; ``mde_relative`` is the planned
    minimum detectable effect.  Intervals are whatever the results were built
    with (sequential and/or multiplicity-corrected), so the verdict inherits
    their error control.
    """
    guardrails = dict(guardrails or {})
    if srm is not None and not srm.ok:
        return Verdict("blocked: SRM", f"Blocked: {srm.message}", ("srm",))
    hurt = [name for name, result in guardrails.items() if effect_direction(result) == "worse"]
    if hurt:
        details = _join([f"{name} {_describe_effect(guardrails[name])}" for name in hurt])
        sentence = f"Do not ship {treatment_name}: it hurts {details}."
        return Verdict("do not ship", sentence, tuple(f"guardrail hurt: {name}" for name in hurt))
    primary_summary = f"{metric_name} {_describe_effect(primary)}"
    direction = effect_direction(primary)
    if direction == "better":
        sentence = f"Ship {treatment_name}: {primary_summary}{_chance_phrase(primary, control_name)}"
        sentence += _guardrail_phrase(guardrails)
        return Verdict("ship", sentence, ("primary better",))
    if direction == "worse":
        sentence = f"Do not ship {treatment_name}: {primary_summary}{_chance_phrase(primary, control_name)}."
        return Verdict("do not ship", sentence, ("primary worse",))
    return _inconclusive(primary, primary_summary, days_more, mde_relative)


def _inconclusive(
    primary: MetricResult, summary: str, days_more: int | None, mde_relative: float | None
) -> Verdict:
    target = f"a {_pct(abs(mde_relative))} lift" if mde_relative else "the planned effect"
    if _inside_mde(primary, mde_relative):
        sentence = f"Stop: no effect likely - {summary} rules out {target}."
        return Verdict("stop: no effect likely", sentence, ("inconclusive", "interval inside the MDE"))
    if days_more == 0:
        sentence = f"Stop: no effect likely - {summary} with enough users to detect {target}."
        return Verdict("stop: no effect likely", sentence, ("inconclusive", "planned sample reached"))
    if days_more is None:
        sentence = (
            f"Keep running: no clear effect yet, {summary}; not enough traffic yet to estimate how long."
        )
        return Verdict("keep running", sentence, ("inconclusive", "days unknown"))
    days = "1 more day" if days_more == 1 else f"{days_more} more days"
    sentence = f"Keep running: about {days} to detect {target}; so far {summary}."
    return Verdict("keep running", sentence, ("inconclusive",))


def _inside_mde(result: DecisionInput, mde_relative: float | None) -> bool:
    """True when the relative interval rules out effects as large as the MDE in both directions."""
    if not mde_relative or result.ci_low is None or result.ci_high is None:
        return False
    return -abs(mde_relative) < result.ci_low and result.ci_high < abs(mde_relative)


def _describe_effect(result: DecisionInput) -> str:
    """'+4.1% (95% CI +1.2% to +7.0%)', or in percentage points when no relative interval exists."""
    level = _level(result.alpha)
    if result.relative_lift is not None and result.ci_low is not None and result.ci_high is not None:
        return f"{_signed_pct(result.relative_lift)} ({level} CI {_signed_pct(result.ci_low)} to {_signed_pct(result.ci_high)})"
    if isinstance(result, ProportionResult):
        return (
            f"{result.abs_lift:+.1f} pp ({level} CI {result.abs_ci_low:+.1f} to {result.abs_ci_high:+.1f} pp)"
        )
    return "not measurable yet"


def _chance_phrase(result: MetricResult, control_name: str) -> str:
    if result.chance_to_win is None:
        return ""
    return f", {_probability(result.chance_to_win)} chance to beat {control_name}"


def _guardrail_phrase(guardrails: Mapping[str, DecisionInput]) -> str:
    if not guardrails:
        return ""
    improved = [name for name, r in guardrails.items() if _interval_direction(r) == "better"]
    unchanged = [name for name in guardrails if name not in improved]
    parts = []
    if unchanged:
        parts.append(f"{_join(unchanged)} unchanged")
    if improved:
        parts.append(f"{_join(improved)} improved")
    return "; " + "; ".join(parts)


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


# --------------------------------------------------------------------------- #
# Bayesian readout: Gaussian prior on the relative lift (gbstats EffectBayesianABTest)
# --------------------------------------------------------------------------- #
# GrowthBook's default proper prior on the relative lift: mean 0, standard
# deviation 0.3 (a lift beyond +/-60 % is a priori unlikely).
DEFAULT_PRIOR_MEAN = 0.0
DEFAULT_PRIOR_VARIANCE = 0.09

RISK_EXPLAINED = (
    "Risk is what you can expect to lose by picking a variant: the average shortfall in lift if that "
    "variant is in fact the worse one, weighted by how likely that is. A treatment with a 90% chance to "
    "win and a risk of 0.1% is a safe bet (even when wrong, it costs little); one with the same chance to "
    "win and a risk of 3% is a gamble. A useful habit: ship only when the treatment's risk is below the "
    "smallest loss you would shrug off. Risk and chance to win come from a Bayesian model with a sceptical "
    "prior (lifts beyond about +/-60% are unlikely), so with little data the expected lift is pulled "
    "towards 0."
)


@dataclass(frozen=True)
class BayesianResult:
    """Posterior of the relative lift ``treatment / control - 1`` (all fractions).

    ``expected`` is the posterior mean, ``ci_low``/``ci_high`` the central
    credible interval at level ``1 - alpha`` and ``se`` the posterior standard
    deviation.  ``risk_control`` is the expected relative loss if we keep
    control (the gain we forgo when treatment is really better), and
    ``risk_treatment`` the expected loss if we ship treatment; both are >= 0
    and read as "by shipping this we expect to lose this much lift".  None
    fields mean "cannot be computed" and ``note`` says why.
    """

    control_rate: float
    treatment_rate: float
    expected: float | None
    ci_low: float | None
    ci_high: float | None
    se: float | None
    chance_to_win: float | None
    risk_control: float | None
    risk_treatment: float | None
    prior_mean: float
    prior_variance: float
    proper: bool
    alpha: float
    higher_is_better: bool
    note: str

    @property
    def relative_lift(self) -> float | None:
        """The posterior mean, under the name the other results use (for ``decision``)."""
        return self.expected


def bayesian_proportion_test(
    control: tuple[int, int],
    treatment: tuple[int, int],
    *,
    prior_mean: float = DEFAULT_PRIOR_MEAN,
    prior_variance: float = DEFAULT_PRIOR_VARIANCE,
    proper: bool = True,
    higher_is_better: bool = True,
    alpha: float = DEFAULT_ALPHA,
) -> BayesianResult:
    """Bayesian readout of two rates; each arm is ``(users, conversions)``.

    As gbstats' ``EffectBayesianABTest`` with a relative prior: the data give
    the relative lift d = p_t / p_c - 1 with the delta-method variance v (the
    same d and v as ``proportion_test``); the prior is N(prior_mean,
    prior_variance) on the relative lift.  Posterior precision 1/v + 1/prior_variance,
    posterior mean (d/v + prior_mean/prior_variance) / precision.  With
    ``proper=False`` the prior is flat: the posterior is N(d, v) and chance to win is
    exactly ``proportion_test``'s.  Risk, for X ~ posterior:
    risk_control = E[max(X, 0)] and risk_treatment = E[max(-X, 0)] (closed form
    mu Phi(mu/s) + s phi(mu/s)); swapped when ``higher_is_better`` is False.
    """
    _check_alpha(alpha)
    if proper and not prior_variance > 0:
        raise ValueError("prior_variance must be positive for a proper prior")
    (n_c, x_c), (n_t, x_t) = _checked_arm(control, "control"), _checked_arm(treatment, "treatment")
    p_c, p_t = x_c / n_c, x_t / n_t
    prior = (prior_mean, prior_variance, proper)
    notes = _boundary_notes(control=(n_c, x_c), treatment=(n_t, x_t), has_relative_ci=False)
    if p_c == 0:
        notes.insert(0, "Control is at 0%, so a relative lift is undefined; read the absolute difference.")
        return _empty_bayesian(p_c, p_t, prior, alpha, higher_is_better, notes)
    data_mean = p_t / p_c - 1.0
    data_variance = relative_lift_variance(p_c, p_c * (1.0 - p_c) / n_c, p_t, p_t * (1.0 - p_t) / n_t)
    if data_variance <= 0:
        notes.insert(0, "Neither arm varies, so the posterior of the lift cannot be estimated.")
        return _empty_bayesian(p_c, p_t, prior, alpha, higher_is_better, notes)
    mean, sd = _gaussian_posterior(data_mean, data_variance, prior_mean, prior_variance, proper)
    half_width = fixed_critical_z(alpha) * sd
    gain, loss = _positive_part_mean(mean, sd), _positive_part_mean(-mean, sd)
    risk_control, risk_treatment = (gain, loss) if higher_is_better else (loss, gain)
    return BayesianResult(
        control_rate=p_c,
        treatment_rate=p_t,
        expected=mean,
        ci_low=mean - half_width,
        ci_high=mean + half_width,
        se=sd,
        chance_to_win=chance_to_win(mean, sd, higher_is_better),
        risk_control=risk_control,
        risk_treatment=risk_treatment,
        prior_mean=prior_mean,
        prior_variance=prior_variance,
        proper=proper,
        alpha=alpha,
        higher_is_better=higher_is_better,
        note=" ".join(notes),
    )


def _gaussian_posterior(
    data_mean: float, data_variance: float, prior_mean: float, prior_variance: float, proper: bool
) -> tuple[float, float]:
    """Normal-normal update; a flat (improper) prior leaves the data untouched."""
    if not proper:
        return data_mean, math.sqrt(data_variance)
    precision = 1.0 / data_variance + 1.0 / prior_variance
    mean = (data_mean / data_variance + prior_mean / prior_variance) / precision
    return mean, math.sqrt(1.0 / precision)


def _positive_part_mean(mu: float, sigma: float) -> float:
    """E[max(X, 0)] for X ~ N(mu, sigma^2) = mu Phi(mu/sigma) + sigma phi(mu/sigma).

    gbstats writes the same quantity as P(X > 0) * E[X | X > 0] via scipy's
    truncated normal; the closed form is exact and needs no scipy call.
    """
    z = mu / sigma
    density = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    # Far in the left tail the two terms cancel to rounding noise around 0.
    return max(0.0, mu * normal_cdf(z) + sigma * density)


def _empty_bayesian(
    p_c: float,
    p_t: float,
    prior: tuple[float, float, bool],
    alpha: float,
    higher_is_better: bool,
    notes: list[str],
) -> BayesianResult:
    prior_mean, prior_variance, proper = prior
    return BayesianResult(
        control_rate=p_c,
        treatment_rate=p_t,
        expected=None,
        ci_low=None,
        ci_high=None,
        se=None,
        chance_to_win=None,
        risk_control=None,
        risk_treatment=None,
        prior_mean=prior_mean,
        prior_variance=prior_variance,
        proper=proper,
        alpha=alpha,
        higher_is_better=higher_is_better,
        note=" ".join(notes),
    )


# --------------------------------------------------------------------------- #
# CUPED: variance reduction with a pre-period covariate (gbstats regression adjustment)
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class CupedStats:
    """One arm: sums over its units of y (metric in the test), x (same unit, pre-period) and x*y."""

    n: int
    y_sum: float
    y_sum_squares: float
    x_sum: float
    x_sum_squares: float
    xy_sum: float


@dataclass(frozen=True)
class CupedResult:
    """CUPED-adjusted relative lift beside the unadjusted one (fractions).

    ``control_mean``/``treatment_mean`` are the unadjusted per-arm means of y.
    ``theta`` is the pooled regression slope of y on x; ``correlation`` the
    pooled correlation of x and y (the expected variance reduction is about
    ``correlation**2``).  ``variance_reduction`` is the reduction achieved:
    1 - Var(adjusted lift) / Var(unadjusted lift); intervals narrow by
    ``sqrt(1 - variance_reduction)``.  None means "cannot be computed" (``note``).
    """

    control_mean: float
    treatment_mean: float
    theta: float
    correlation: float | None
    relative_lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    se: float | None
    unadjusted_lift: float | None
    unadjusted_ci_low: float | None
    unadjusted_ci_high: float | None
    unadjusted_p_value: float | None
    unadjusted_se: float | None
    variance_reduction: float | None
    alpha: float
    higher_is_better: bool
    note: str


@dataclass(frozen=True)
class _Estimate:
    """A z-based estimate: point, interval, two-sided p-value and standard error."""

    lift: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    se: float | None = None


@dataclass(frozen=True)
class _ArmMoments:
    n: int
    mean_y: float
    mean_x: float
    var_y: float
    var_x: float
    cov_xy: float


def cuped_test(
    control: CupedStats,
    treatment: CupedStats,
    *,
    alpha: float = DEFAULT_ALPHA,
    higher_is_better: bool = True,
) -> CupedResult:
    """Relative lift with CUPED (regression adjustment on the pre-period x), as gbstats does it.

    theta = Cov(x, y) / Var(x) over the units of *both* arms pooled (gbstats
    ``compute_theta``: one slope, so the adjustment cannot itself create a
    difference).  Each arm's adjusted mean is mean_y - theta * mean_x and its
    per-unit variance Var(y) + theta^2 Var(x) - 2 theta Cov(x, y) (n - 1
    denominators).  Lift = (adjusted_t - adjusted_c) / mean_y_c, with the
    delta-method variance on the *unadjusted* means (gbstats
    ``frequentist_variance``).  z reference like the rest of this module
    (gbstats uses Welch's t: equal to 4 decimals at a few hundred units per arm).
    When x does not vary (no pre-period history) theta is 0 and the result equals
    the unadjusted one.  Raises ValueError for an arm with fewer than 2 units.
    """
    _check_alpha(alpha)
    arm_c, arm_t = _cuped_moments(control, "control"), _cuped_moments(treatment, "treatment")
    theta, correlation, notes = _pooled_theta(control, treatment)
    if arm_c.mean_y <= 0:
        notes.insert(0, "Control's mean is not positive, so a relative lift is undefined.")
        return _cuped_result(arm_c, arm_t, theta, correlation, None, None, alpha, higher_is_better, notes)
    unadjusted = _cuped_inference(arm_c, arm_t, 0.0, alpha)
    adjusted = _cuped_inference(arm_c, arm_t, theta, alpha)
    if adjusted is None or unadjusted is None:
        notes.insert(0, "Neither arm varies, so the interval and p-value cannot be estimated.")
    notes += _small_sample_note(arm_c.n, arm_t.n)
    return _cuped_result(
        arm_c, arm_t, theta, correlation, adjusted, unadjusted, alpha, higher_is_better, notes
    )


def _cuped_moments(arm: CupedStats, label: str) -> _ArmMoments:
    if arm.n < 2:
        raise ValueError(f"{label} needs at least 2 units to estimate a variance")
    n = int(arm.n)

    def centred(sum_ab: float, sum_a: float, sum_b: float) -> float:
        # float(): sums often arrive as numpy scalars; results stay plain floats.
        return float((sum_ab - sum_a * sum_b / n) / (n - 1))

    return _ArmMoments(
        n=n,
        mean_y=float(arm.y_sum / n),
        mean_x=float(arm.x_sum / n),
        var_y=max(0.0, centred(arm.y_sum_squares, arm.y_sum, arm.y_sum)),
        var_x=max(0.0, centred(arm.x_sum_squares, arm.x_sum, arm.x_sum)),
        cov_xy=centred(arm.xy_sum, arm.x_sum, arm.y_sum),
    )


def _pooled_theta(control: CupedStats, treatment: CupedStats) -> tuple[float, float | None, list[str]]:
    """gbstats compute_theta: slope of y on x over both arms' units together (and their correlation)."""
    joint = CupedStats(
        n=control.n + treatment.n,
        y_sum=control.y_sum + treatment.y_sum,
        y_sum_squares=control.y_sum_squares + treatment.y_sum_squares,
        x_sum=control.x_sum + treatment.x_sum,
        x_sum_squares=control.x_sum_squares + treatment.x_sum_squares,
        xy_sum=control.xy_sum + treatment.xy_sum,
    )
    moments = _cuped_moments(joint, "the pooled data")
    if moments.var_x <= 0 or moments.var_y <= 0:
        return 0.0, None, ["The pre-period covariate (or the metric) does not vary: no CUPED adjustment."]
    correlation = moments.cov_xy / math.sqrt(moments.var_x * moments.var_y)
    return moments.cov_xy / moments.var_x, correlation, []


def _cuped_inference(arm_c: _ArmMoments, arm_t: _ArmMoments, theta: float, alpha: float) -> _Estimate | None:
    """Lift, interval, p-value and se for one theta (0 = unadjusted); None if there is no variance."""

    def adjusted_variance(arm: _ArmMoments) -> float:
        return max(0.0, arm.var_y + theta * theta * arm.var_x - 2.0 * theta * arm.cov_xy)

    mean_c, mean_t = arm_c.mean_y, arm_t.mean_y
    lift = ((mean_t - theta * arm_t.mean_x) - (mean_c - theta * arm_c.mean_x)) / mean_c
    variance = relative_lift_variance(
        mean_c, adjusted_variance(arm_c) / arm_c.n, mean_t, adjusted_variance(arm_t) / arm_t.n
    )
    if variance <= 0:
        return None
    return _z_estimate(lift, math.sqrt(variance), alpha)


def _z_estimate(lift: float, se: float, alpha: float) -> _Estimate:
    half_width = fixed_critical_z(alpha) * se
    return _Estimate(lift, lift - half_width, lift + half_width, two_sided_p_value(lift / se), se)


def _cuped_result(
    arm_c: _ArmMoments,
    arm_t: _ArmMoments,
    theta: float,
    correlation: float | None,
    adjusted: _Estimate | None,
    unadjusted: _Estimate | None,
    alpha: float,
    higher_is_better: bool,
    notes: list[str],
) -> CupedResult:
    adj, raw = adjusted or _Estimate(), unadjusted or _Estimate()
    reduction = None
    if adj.se is not None and raw.se is not None:
        reduction = 1.0 - (adj.se / raw.se) ** 2
    return CupedResult(
        control_mean=arm_c.mean_y,
        treatment_mean=arm_t.mean_y,
        theta=theta,
        correlation=correlation,
        relative_lift=adj.lift,
        ci_low=adj.ci_low,
        ci_high=adj.ci_high,
        p_value=adj.p_value,
        se=adj.se,
        unadjusted_lift=raw.lift,
        unadjusted_ci_low=raw.ci_low,
        unadjusted_ci_high=raw.ci_high,
        unadjusted_p_value=raw.p_value,
        unadjusted_se=raw.se,
        variance_reduction=reduction,
        alpha=alpha,
        higher_is_better=higher_is_better,
        note=" ".join(notes),
    )


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


# --------------------------------------------------------------------------- #
# Effects that differ by segment (country, carrier): Cochran's Q
# --------------------------------------------------------------------------- #
SegmentCorrection = Literal["holm", "bh"]


@dataclass(frozen=True)
class SegmentEffect:
    """A segment's relative lift and its standard error, when not passing a full result."""

    lift: float
    se: float


@dataclass(frozen=True)
class SegmentLift:
    """One segment inside ``heterogeneity_test``.

    ``ci_low``/``ci_high`` are at the corrected level ``ci_alpha``;
    ``p_value`` is raw, ``p_value_adjusted`` corrected across the segments;
    ``direction`` is better/worse only when ``p_value_adjusted < alpha``.
    """

    segment: str
    lift: float
    se: float
    ci_low: float
    ci_high: float
    ci_alpha: float
    p_value: float
    p_value_adjusted: float
    direction: Direction


@dataclass(frozen=True)
class HeterogeneityResult:
    """Does the effect differ across segments?  Cochran's Q with I^2, plus corrected per-segment lifts.

    ``differs`` is ``p_value < alpha``.  ``opposite`` is True when, after the
    multiplicity correction, at least one segment is significantly better and
    another significantly worse (the variant helps somewhere and hurts elsewhere).
    ``pooled_lift``/``pooled_se`` are the fixed-effect (inverse-variance)
    average; ``tau_squared`` the DerSimonian-Laird between-segment variance.
    Segments without a lift are listed in ``excluded`` with the reason.
    """

    q: float | None
    df: int
    p_value: float | None
    i_squared: float | None
    tau_squared: float | None
    pooled_lift: float | None
    pooled_se: float | None
    differs: bool
    opposite: bool
    segments: tuple[SegmentLift, ...]
    excluded: tuple[tuple[str, str], ...]
    correction: SegmentCorrection
    alpha: float
    message: str


def heterogeneity_test(
    per_segment_results: Mapping[str, ProportionResult | RelativeResult | CupedResult | SegmentEffect],
    *,
    alpha: float = DEFAULT_ALPHA,
    correction: SegmentCorrection = "holm",
    higher_is_better: bool = True,
) -> HeterogeneityResult:
    """Test that the treatment effect differs across segments, and correct the per-segment lifts.

    Input: segment name -> a fixed-horizon ``ProportionResult``, ``RelativeResult``,
    ``CupedResult`` or ``SegmentEffect``; the standard error of each lift is the
    interval half-width divided by the critical z (exact for fixed-horizon results).

    Cochran's Q = sum w_i (y_i - y_bar)^2 with w_i = 1/se_i^2 and y_bar the
    inverse-variance mean; under "same effect everywhere" Q ~ chi-square(k - 1).
    I^2 = max(0, (Q - df) / Q) is the share of the spread that is real rather
    than noise (Higgins & Thompson 2002).  Per-segment p-values are corrected
    across the k segments with Holm (default) or Benjamini-Hochberg ("bh").
    Intervals: at alpha / k for Holm (Bonferroni, so an interval excluding 0
    implies a Holm-significant segment); for BH, the Benjamini-Yekutieli (2005)
    false-coverage interval at R * alpha / k, with R the number of BH
    discoveries (alpha / k when there are none), which excludes 0 exactly for
    the discoveries.
    """
    _check_alpha(alpha)
    if correction not in ("holm", "bh"):
        raise ValueError(f"unknown correction {correction!r}; use 'holm' or 'bh'")
    effects, excluded = _segment_effects(per_segment_results, higher_is_better)
    segments = _corrected_segments(effects, alpha, correction, higher_is_better)
    q, p_value, i_squared, tau_squared, pooled, pooled_se = _cochran_q(effects)
    differs = p_value is not None and p_value < alpha
    directions = {s.direction for s in segments}
    opposite = {"better", "worse"} <= directions
    result = HeterogeneityResult(
        q=q,
        df=max(0, len(effects) - 1),
        p_value=p_value,
        i_squared=i_squared,
        tau_squared=tau_squared,
        pooled_lift=pooled,
        pooled_se=pooled_se,
        differs=differs,
        opposite=opposite,
        segments=segments,
        excluded=tuple(excluded),
        correction=correction,
        alpha=alpha,
        message="",
    )
    return replace(result, message=_heterogeneity_message(result))


def _segment_effects(
    per_segment_results: Mapping[str, object], higher_is_better: bool
) -> tuple[dict[str, SegmentEffect], list[tuple[str, str]]]:
    effects: dict[str, SegmentEffect] = {}
    excluded: list[tuple[str, str]] = []
    for name, result in per_segment_results.items():
        effect: SegmentEffect | None = None
        if isinstance(result, SegmentEffect):
            effect = result
        else:
            if getattr(result, "higher_is_better", higher_is_better) != higher_is_better:
                raise ValueError(
                    f"segment {name!r} was computed with higher_is_better="
                    f"{not higher_is_better}; pass the same higher_is_better to heterogeneity_test"
                )
            effect = _lift_and_se(result)
        if effect is None:
            excluded.append((name, "no relative lift (control at 0 or no variation)"))
        elif not (math.isfinite(effect.lift) and math.isfinite(effect.se) and effect.se > 0):
            excluded.append((name, "lift or standard error not finite and positive"))
        else:
            effects[name] = effect
    return effects, excluded


def _lift_and_se(result: object) -> SegmentEffect | None:
    """A result's relative lift and its standard error, or None when it has no lift."""
    if isinstance(result, CupedResult):
        if result.relative_lift is None or result.se is None:
            return None
        return SegmentEffect(result.relative_lift, result.se)
    if not isinstance(result, (ProportionResult, RelativeResult)):
        raise TypeError(f"cannot read a lift from {type(result).__name__}")
    if result.sequential:
        raise ValueError(
            "pass fixed-horizon results (sequential=False): segment tests need plain standard errors"
        )
    if result.relative_lift is None or result.ci_low is None or result.ci_high is None:
        return None
    se = (result.ci_high - result.ci_low) / (2.0 * fixed_critical_z(result.alpha))
    return SegmentEffect(result.relative_lift, se)


def _corrected_segments(
    effects: Mapping[str, SegmentEffect], alpha: float, correction: SegmentCorrection, higher_is_better: bool
) -> tuple[SegmentLift, ...]:
    k = len(effects)
    if k == 0:
        return ()
    raw = [two_sided_p_value(e.lift / e.se) for e in effects.values()]
    adjusted = holm_adjust(raw) if correction == "holm" else benjamini_hochberg(raw)
    discoveries = sum(p < alpha for p in adjusted)
    ci_alpha = alpha * max(1, discoveries) / k if correction == "bh" else alpha / k
    z = fixed_critical_z(ci_alpha)
    segments = []
    for (name, effect), p, p_adj in zip(effects.items(), raw, adjusted, strict=True):
        direction: Direction = "unclear"
        if p_adj < alpha:
            good = effect.lift > 0 if higher_is_better else effect.lift < 0
            direction = "better" if good else "worse"
        segments.append(
            SegmentLift(
                segment=name,
                lift=effect.lift,
                se=effect.se,
                ci_low=effect.lift - z * effect.se,
                ci_high=effect.lift + z * effect.se,
                ci_alpha=ci_alpha,
                p_value=p,
                p_value_adjusted=p_adj,
                direction=direction,
            )
        )
    return tuple(segments)


def _cochran_q(
    effects: Mapping[str, SegmentEffect],
) -> tuple[float | None, float | None, float | None, float | None, float | None, float | None]:
    """(Q, p, I^2, tau^2 DerSimonian-Laird, fixed-effect mean, its se); Nones below two segments."""
    if not effects:
        return None, None, None, None, None, None
    weights = [1.0 / (e.se * e.se) for e in effects.values()]
    lifts = [e.lift for e in effects.values()]
    total = sum(weights)
    pooled = sum(w * y for w, y in zip(weights, lifts, strict=True)) / total
    pooled_se = math.sqrt(1.0 / total)
    if len(effects) < 2:
        return None, None, None, None, pooled, pooled_se
    q = sum(w * (y - pooled) ** 2 for w, y in zip(weights, lifts, strict=True))
    df = len(effects) - 1
    i_squared = max(0.0, (q - df) / q) if q > 0 else 0.0
    tau_squared = max(0.0, (q - df) / (total - sum(w * w for w in weights) / total))
    # special.chdtrc is the chi-square survival function as a ufunc: ~100x faster than stats.chi2.sf.
    return q, float(special.chdtrc(df, q)), i_squared, tau_squared, pooled, pooled_se


def _heterogeneity_message(result: HeterogeneityResult) -> str:
    """One sentence for the page: whether the effect differs, and where it helps or hurts."""
    k = len(result.segments)
    if result.p_value is None:
        return f"Only {k} segment{'s' if k != 1 else ''} with a measurable lift: nothing to compare."
    family = f"{k} segments, {_correction_name(result.correction)}-corrected"
    statistic = (
        f"Cochran's Q = {result.q:.1f} on {result.df} df, p = {result.p_value:.2g}, "
        f"I\u00b2 = {100 * (result.i_squared or 0.0):.0f}%"
    )
    helped = [s.segment for s in result.segments if s.direction == "better"]
    hurt = [s.segment for s in result.segments if s.direction == "worse"]
    where = []
    if helped:
        where.append(f"it helps in {_join(helped)}")
    if hurt:
        where.append(f"it hurts in {_join(hurt)}")
    detail = f": {' and '.join(where)} ({family})" if where else f"; no single segment stands out ({family})"
    if result.opposite:
        return f"The effect goes in opposite directions by segment ({statistic}){detail}."
    if result.differs:
        return f"The effect differs by segment ({statistic}){detail}."
    return f"No evidence that the effect differs by segment ({statistic}){detail}."


def _correction_name(correction: SegmentCorrection) -> str:
    return "Holm" if correction == "holm" else "Benjamini-Hochberg"


# --------------------------------------------------------------------------- #
# Decision framework: Ship / Discuss / Don't ship
# --------------------------------------------------------------------------- #
ShipOutcome = Literal["Ship", "Discuss", "Don't ship"]
DecisionInput = ProportionResult | RelativeResult | CupedResult | BayesianResult

# The standard SMS guardrails and their good direction.  ``decision`` refuses a
# guardrail with one of these names whose result was computed the other way
# round (a forgotten higher_is_better=False would turn a harm into a win).
GUARDRAIL_HIGHER_IS_BETTER: Mapping[str, bool] = {
    "delivery rate": True,
    "opt-out rate": False,
    "cost per delivered message": False,
    "fallback rate": False,
}

# The rules of ``decision``, first match wins; the page quotes them verbatim.
DECISION_RULES: tuple[str, ...] = (
    (
        "Sample ratio mismatch: Don't ship. The traffic split does not match the plan, so no number can be "
        "trusted; fix the assignment first."
    ),
    (
        "A guardrail got worse (its interval lies entirely on its bad side): Don't ship, whatever the primary "
        "metric says."
    ),
    "The primary metric got worse (its interval lies entirely on its bad side): Don't ship.",
    (
        "The primary metric got better but the test has not run the minimum number of days: Don't ship yet; "
        "keep running until the minimum is reached."
    ),
    (
        "The primary metric got better but the variant hurts at least one segment (country or carrier, after "
        "correcting for the number of segments): Discuss; consider shipping only where it helps."
    ),
    (
        "The primary metric got better (its interval lies entirely on its good side) and no guardrail got "
        "worse: Ship."
    ),
    (
        "No clear change on the primary metric, and the test is short of its minimum days or of the sample "
        "needed to detect the minimum detectable effect (MDE) with the planned power: Don't ship yet; keep "
        "running for the days shown."
    ),
    (
        "No clear change on the primary metric with enough data, but a guardrail got better (for example a "
        "lower cost per delivered message): Discuss; ship only if that gain is worth it on its own."
    ),
    (
        "No clear change on the primary metric with enough data (the interval rules out effects as large as "
        "the MDE, or the planned sample is reached): Don't ship; keep the control."
    ),
)


@dataclass(frozen=True)
class ShipDecision:
    """The decision card: outcome, one plain sentence, and the days the test must still run.

    ``final`` is False when more data could change the answer (``days_needed``
    then says how many more days; None when it cannot be estimated yet).
    ``rule`` is the 1-based number of the rule in ``DECISION_RULES`` that fired.
    """

    outcome: ShipOutcome
    reason: str
    days_needed: int | None
    final: bool
    rule: int
    breached: tuple[str, ...]
    improved: tuple[str, ...]


def decision(
    primary: DecisionInput,
    guardrails: Mapping[str, DecisionInput] | None,
    *,
    mde: float,
    min_days: float,
    days_so_far: float,
    power: float = DEFAULT_POWER,
    srm: SrmResult | None = None,
    segments: HeterogeneityResult | None = None,
    metric_name: str = "conversion",
    treatment_name: str = "B",
) -> ShipDecision:
    """Ship, Discuss or Don't ship, from one primary metric and its guardrails.

    Rules, first match wins (``DECISION_RULES`` holds the same sentences):

    1. Sample ratio mismatch: Don't ship. The traffic split does not match the
       plan, so no number can be trusted; fix the assignment first.
    2. A guardrail got worse (its interval lies entirely on its bad side):
       Don't ship, whatever the primary metric says.
    3. The primary metric got worse (its interval lies entirely on its bad
       side): Don't ship.
    4. The primary metric got better but the test has not run the minimum
       number of days: Don't ship yet; keep running until the minimum is reached.
    5. The primary metric got better but the variant hurts at least one segment
       (country or carrier, after correcting for the number of segments):
       Discuss; consider shipping only where it helps.
    6. The primary metric got better (its interval lies entirely on its good
       side) and no guardrail got worse: Ship.
    7. No clear change on the primary metric, and the test is short of its
       minimum days or of the sample needed to detect the minimum detectable
       effect (MDE) with the planned power: Don't ship yet; keep running for the
       days shown.
    8. No clear change on the primary metric with enough data, but a guardrail
       got better (for example a lower cost per delivered message): Discuss;
       ship only if that gain is worth it on its own.
    9. No clear change on the primary metric with enough data (the interval
       rules out effects as large as the MDE, or the planned sample is
       reached): Don't ship; keep the control.

    "Better"/"worse" read each result's own interval (and direction:
    ``higher_is_better``), so sequential or multiplicity-corrected results
    carry their error control into the decision; for proportions the absolute
    (Newcombe) interval must agree.  Days still needed: the standard error of
    the primary lift shrinks like 1/sqrt(days) at the traffic seen so far, and
    the test has enough data once it is at most MDE / (z_{1-alpha/2} + z_power),
    so days in total = days_so_far * (se / that)^2 (fixed-horizon formula); the
    days to the minimum count too.  ``mde`` is a relative lift (0.02 = 2 %).
    """
    _check_decision_inputs(mde, min_days, days_so_far, power)
    guardrails = dict(guardrails or {})
    _check_guardrail_directions(guardrails)
    breached = tuple(name for name, r in guardrails.items() if _interval_direction(r) == "worse")
    improved = tuple(name for name, r in guardrails.items() if _interval_direction(r) == "better")

    def made(outcome: ShipOutcome, rule: int, reason: str, days: int | None, final: bool) -> ShipDecision:
        return ShipDecision(outcome, reason, days, final, rule, breached, improved)

    if srm is not None and not srm.ok:
        return made("Don't ship", 1, srm.message, None, False)
    if breached:
        hurt = _join([f"{name} got worse, {_describe_effect(guardrails[name])}" for name in breached])
        return made("Don't ship", 2, f"Don't ship {treatment_name}: {hurt}.", 0, True)
    effect = _describe_effect(primary)
    direction = _interval_direction(primary)
    if direction == "worse":
        return made(
            "Don't ship", 3, f"Don't ship {treatment_name}: {metric_name} got worse, {effect}.", 0, True
        )
    min_left = max(0, math.ceil(min_days - days_so_far - 1e-9))
    if direction == "better":
        return _decide_better(
            made, metric_name, effect, guardrails, segments, min_left, min_days, treatment_name
        )
    days_for_power = _days_for_power(primary, mde, power, days_so_far)
    return _decide_unclear(
        made, primary, metric_name, effect, improved, mde, min_left, days_for_power, treatment_name
    )


_MakeDecision = Callable[[ShipOutcome, int, str, int | None, bool], ShipDecision]


def _decide_better(
    made: _MakeDecision,
    metric: str,
    effect: str,
    guardrails: Mapping[str, DecisionInput],
    segments: HeterogeneityResult | None,
    min_left: int,
    min_days: float,
    treatment_name: str,
) -> ShipDecision:
    """Rules 4 to 6: the primary metric improved."""
    if min_left > 0:
        reason = (
            f"Don't ship {treatment_name} yet: {metric} looks better, {effect}, but the test must run at least "
            f"{min_days:g} days (weekday and novelty effects can still erase an early win); "
            f"{_days_phrase(min_left)} to go."
        )
        return made("Don't ship", 4, reason, min_left, False)
    hurt = [s.segment for s in segments.segments if s.direction == "worse"] if segments else []
    if hurt and segments is not None:
        reason = (
            f"Discuss: {metric} is better overall, {effect}, but {treatment_name} hurts {_join(hurt)} "
            f"({_correction_name(segments.correction)}-corrected across {len(segments.segments)} segments); "
            "consider shipping it only where it helps."
        )
        return made("Discuss", 5, reason, 0, True)
    reason = f"Ship {treatment_name}: {metric} is better, {effect}" + _guardrail_phrase(guardrails) + "."
    return made("Ship", 6, reason, 0, True)


def _decide_unclear(
    made: _MakeDecision,
    primary: DecisionInput,
    metric: str,
    effect: str,
    improved: tuple[str, ...],
    mde: float,
    min_left: int,
    days_for_power: int | None,
    treatment_name: str,
) -> ShipDecision:
    """Rules 7 to 9: no clear change on the primary metric."""
    inside = _inside_mde(primary, mde)
    short_of_power = not inside and (days_for_power is None or days_for_power > 0)
    if min_left > 0 or short_of_power:
        # An interval already inside +/-MDE needs no more power, only the minimum days.
        days = min_left if inside else None if days_for_power is None else max(min_left, days_for_power)
        how_long = (
            f"; there is not enough data yet to say how long it takes to detect a {_pct(mde)} change"
            if days is None
            else f" about {_days_phrase(days)} to detect a {_pct(mde)} change"
        )
        reason = (
            f"Don't ship {treatment_name} yet: no clear change in {metric} so far, {effect}; "
            f"keep running{how_long}."
        )
        return made("Don't ship", 7, reason, days, False)
    enough = (
        f"which rules out a {_pct(mde)} change"
        if inside
        else f"although the test has enough data to detect a {_pct(mde)} change"
    )
    if improved:
        reason = (
            f"Discuss: no clear change in {metric}, {effect}, {enough}, but {_join(list(improved))} got "
            f"better; ship {treatment_name} only if that is worth it on its own."
        )
        return made("Discuss", 8, reason, 0, True)
    reason = (
        f"Don't ship {treatment_name}: no clear change in {metric}, {effect}, {enough}; keep the control."
    )
    return made("Don't ship", 9, reason, 0, True)


def _days_phrase(days: int) -> str:
    return "1 more day" if days == 1 else f"{days} more days"


def _check_decision_inputs(mde: float, min_days: float, days_so_far: float, power: float) -> None:
    if not mde > 0:
        raise ValueError("mde must be a positive relative lift, e.g. 0.02 for 2%")
    if min_days < 0 or days_so_far < 0:
        raise ValueError("min_days and days_so_far cannot be negative")
    if not 0 < power < 1:
        raise ValueError("power must be between 0 and 1")


def _check_guardrail_directions(guardrails: Mapping[str, DecisionInput]) -> None:
    # "Opt-out rate", "opt-out" and "OPT-OUT RATE " all name the same standard guardrail.
    standard = {key.removesuffix(" rate"): value for key, value in GUARDRAIL_HIGHER_IS_BETTER.items()}
    for name, result in guardrails.items():
        expected = standard.get(name.strip().lower().removesuffix(" rate"))
        if expected is not None and result.higher_is_better != expected:
            raise ValueError(
                f"guardrail {name!r} is better when {'higher' if expected else 'lower'}: compute its "
                f"result with higher_is_better={expected}"
            )


def _interval_direction(result: DecisionInput) -> Direction:
    """better / worse when the result's interval lies on one side of 0 (see ``effect_direction``)."""
    if isinstance(result, (ProportionResult, RelativeResult)):
        return effect_direction(result)
    if result.ci_low is None or result.ci_high is None:
        return "unclear"
    if result.ci_low > 0:
        return "better" if result.higher_is_better else "worse"
    if result.ci_high < 0:
        return "worse" if result.higher_is_better else "better"
    return "unclear"


def _days_for_power(primary: DecisionInput, mde: float, power: float, days_so_far: float) -> int | None:
    """More days until the primary lift's se reaches MDE / (z_{1-alpha/2} + z_power); None if unknown."""
    se = _standard_error(primary)
    if se is None or days_so_far <= 0:
        return None
    target = mde / (fixed_critical_z(primary.alpha) + float(special.ndtri(power)))
    total = days_so_far * (se / target) ** 2
    return max(0, math.ceil(total - days_so_far - 1e-9))


def _standard_error(result: DecisionInput) -> float | None:
    """The standard error of the relative lift (posterior sd for a Bayesian result)."""
    if isinstance(result, (CupedResult, BayesianResult)):
        return result.se
    if result.relative_lift is None or result.ci_low is None or result.ci_high is None:
        return None
    if isinstance(result, ProportionResult):
        # From the counts, so sequential results (wider intervals) give the plain se too.
        p_c, p_t = result.control_rate, result.treatment_rate
        variance = relative_lift_variance(
            p_c, p_c * (1 - p_c) / result.control_users, p_t, p_t * (1 - p_t) / result.treatment_users
        )
        return math.sqrt(variance) if variance > 0 else None
    if result.sequential:
        return None
    return (result.ci_high - result.ci_low) / (2.0 * fixed_critical_z(result.alpha))


__all__ = [
    "CHANCE_TO_WIN_EXPLAINED",
    "DECISION_RULES",
    "DEFAULT_PRIOR_MEAN",
    "DEFAULT_PRIOR_VARIANCE",
    "GUARDRAIL_HIGHER_IS_BETTER",
    "RISK_EXPLAINED",
    "Arm",
    "BayesianResult",
    "CupedResult",
    "CupedStats",
    "HeterogeneityResult",
    "MeanStats",
    "MetricResult",
    "ProportionResult",
    "RatioStats",
    "RelativeResult",
    "SegmentEffect",
    "SegmentLift",
    "ShipDecision",
    "SrmResult",
    "VariantComparison",
    "Verdict",
    "bayesian_proportion_test",
    "benjamini_hochberg",
    "chance_to_win",
    "compare_variants",
    "critical_z",
    "cuped_test",
    "days_needed",
    "decision",
    "effect_direction",
    "fixed_critical_z",
    "heterogeneity_test",
    "holm_adjust",
    "mean_test",
    "minimum_detectable_effect",
    "newcombe_interval",
    "proportion_test",
    "ratio_test",
    "relative_lift_unit_variance",
    "relative_lift_variance",
    "required_sample_size",
    "sequential_critical_z",
    "sequential_p_value",
    "sequential_rho",
    "srm_check",
    "srm_p_value",
    "two_sided_p_value",
    "verdict",
    "wilson_interval",
]
