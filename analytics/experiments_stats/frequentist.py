"""Frequentist tests: proportions (delta-method relative lift, Newcombe absolute interval), means,
ratios, A/B/n with a multiplicity correction, and the sample ratio mismatch check.
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy import stats

from switchboard.analytics.experiments_stats.base import (
    DEFAULT_ALPHA,
    DEFAULT_SEQUENTIAL_TUNING_N,
    DEFAULT_SRM_THRESHOLD,
    MIN_SRM_EXPECTED_UNITS,
    Arm,
    Correction,
    MeanStats,
    ProportionResult,
    RatioStats,
    RelativeResult,
    SrmResult,
    VariantComparison,
    _check_alpha,
    _Relative,
    _relative_inference,
    _sequential_note,
    critical_z,
    newcombe_interval,
)
from switchboard.analytics.experiments_stats.multiplicity import (
    benjamini_hochberg,
    holm_adjust,
)


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
