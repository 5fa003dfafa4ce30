"""CUPED: variance reduction with a pre-period covariate, theta pooled over both arms (gbstats)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from switchboard.analytics.experiments_stats.base import (
    DEFAULT_ALPHA,
    _check_alpha,
    fixed_critical_z,
    relative_lift_variance,
    two_sided_p_value,
)
from switchboard.analytics.experiments_stats.frequentist import (
    _small_sample_note,
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
