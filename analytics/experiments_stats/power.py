"""Power: required sample size, minimum detectable effect and days still needed."""

from __future__ import annotations

import math

from scipy import optimize, special

from switchboard.analytics.experiments_stats.base import (
    DEFAULT_ALPHA,
    DEFAULT_POWER,
    DEFAULT_SEQUENTIAL_TUNING_N,
    _check_alpha,
    _check_rate,
    fixed_critical_z,
    relative_lift_variance,
    sequential_critical_z,
)


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
