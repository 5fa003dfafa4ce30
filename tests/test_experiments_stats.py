"""Tests for analytics.experiments_stats.

Every number is checked against an independent computation: published values
(Newcombe 1998), scipy functions the module does not use for that purpose
(scipy.stats.chisquare, scipy.stats.norm), formulas written out in a different
algebraic form, numerical root finding, or simulation.  The simulations are
seeded, so they are deterministic; their tolerances are ~3 binomial standard
errors, wide enough to pass for any honest seed and narrow enough to catch a
broken test (the naive-peeking contrast shows a tolerance that does fail).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy.stats import chisquare, norm

from switchboard.analytics.experiments_stats import (
    CHANCE_TO_WIN_EXPLAINED,
    Arm,
    MeanStats,
    ProportionResult,
    RatioStats,
    RelativeResult,
    SrmResult,
    compare_variants,
    days_needed,
    effect_direction,
    holm_adjust,
    mean_test,
    minimum_detectable_effect,
    newcombe_interval,
    proportion_test,
    ratio_test,
    required_sample_size,
    sequential_critical_z,
    sequential_p_value,
    srm_check,
    srm_p_value,
    verdict,
    wilson_interval,
)

Z95 = norm.ppf(0.975)


# --------------------------------------------------------------------------- #
# Independent reference implementations (written differently on purpose)
# --------------------------------------------------------------------------- #
def reference_relative(p_c: float, n_c: int, p_t: float, n_t: int) -> tuple[float, float]:
    """Relative lift and its delta-method se in the coefficient-of-variation form.

    Var(T/C) ~ (T/C)^2 * (CV_T^2 + CV_C^2), with CV^2 of a proportion = (1 - p) / (n p).
    """
    ratio = p_t / p_c
    se = ratio * math.sqrt((1 - p_t) / (n_t * p_t) + (1 - p_c) / (n_c * p_c))
    return ratio - 1, se


def reference_wilson(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson bounds as the roots of |p_hat - p| = z sqrt(p (1 - p) / n), found numerically."""
    p_hat = x / n

    def score(p: float) -> float:
        return (p_hat - p) ** 2 - z * z * p * (1 - p) / n

    # At p_hat = 0 or 1 the score equation has a trivial root at p_hat itself;
    # step just inside so brentq finds the other one.
    inner = min(max(p_hat, 1e-12), 1 - 1e-12)
    low = 0.0 if x == 0 else optimize.brentq(score, 1e-15, inner)
    high = 1.0 if x == n else optimize.brentq(score, inner, 1 - 1e-15)
    return low, high


def reference_sequential_halfwidth(se: float, n: int, alpha: float, tuning_n: float) -> float:
    """GrowthBook / Waudby-Smith eq. 9 with s2 = se^2 * n, exactly as gbstats writes it."""
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_n)
    s2 = se**2 * n
    return math.sqrt(s2) * math.sqrt(
        2 * (n * rho**2 + 1) / (n**2 * rho**2) * math.log(math.sqrt(n * rho**2 + 1) / alpha)
    )


def reference_sequential_p(lift: float, se: float, n: int, alpha: float, tuning_n: float) -> float:
    """gbstats' SequentialTwoSidedTTest.p_value: 1 / e-value, eq. 155, in its own parameterisation."""
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_n)
    st2 = lift**2 * n / se**2
    tr2p1 = n * rho**2 + 1
    e_value = math.exp(rho**2 * st2 / (2 * tr2p1)) / math.sqrt(tr2p1)
    return min(1 / e_value, 1.0)


def per_arm_users_formula(p: float, mde: float, alpha: float, power: float) -> float:
    """n = (z_a + z_b)^2 * sigma^2 / delta^2 with sigma^2 from Var(B/A) ~ (B/A)^2 (CV_B^2 + CV_A^2)."""
    q = p * (1 + mde)
    sigma2 = (q / p) ** 2 * ((1 - q) / q + (1 - p) / p)
    return (norm.ppf(1 - alpha / 2) + norm.ppf(power)) ** 2 * sigma2 / mde**2


# --------------------------------------------------------------------------- #
# Newcombe / Wilson against published values
# --------------------------------------------------------------------------- #
# Newcombe R.G. (1998) Stat Med 17:873-890, Table II, method 10 (hybrid score, no CC):
# (treatment x/n, control x/n) -> difference, lower, upper.
NEWCOMBE_TABLE_II = [
    ((56, 70), (48, 80), 0.2000, 0.0524, 0.3339),
    ((9, 10), (3, 10), 0.6000, 0.1705, 0.8090),
    ((6, 7), (2, 7), 0.5714, 0.0582, 0.8062),
    ((5, 56), (0, 29), 0.0893, -0.0381, 0.1926),
    ((0, 10), (0, 20), 0.0000, -0.1611, 0.2775),
    ((0, 10), (0, 10), 0.0000, -0.2775, 0.2775),
    ((10, 10), (0, 20), 1.0000, 0.6791, 1.0000),
    ((10, 10), (0, 10), 1.0000, 0.6075, 1.0000),
]


@pytest.mark.parametrize(("treatment", "control", "diff", "low", "high"), NEWCOMBE_TABLE_II)
def test_newcombe_matches_published_table(
    treatment: tuple[int, int], control: tuple[int, int], diff: float, low: float, high: float
) -> None:
    (x_t, n_t), (x_c, n_c) = treatment, control
    result = proportion_test((n_c, x_c), (n_t, x_t))
    # abs_* are percentage points; the table is in proportions, rounded to 4 decimals.
    assert result.abs_lift / 100 == pytest.approx(diff, abs=5e-5)
    assert result.abs_ci_low / 100 == pytest.approx(low, abs=5e-5)
    assert result.abs_ci_high / 100 == pytest.approx(high, abs=5e-5)
    assert newcombe_interval((n_t, x_t), (n_c, x_c), Z95)[1] == pytest.approx(low, abs=5e-5)


@pytest.mark.parametrize(("x", "n"), [(0, 10), (1, 10), (48, 80), (81, 263), (999, 1000), (1000, 1000)])
@pytest.mark.parametrize("z", [Z95, 2.5, 3.4])
def test_wilson_matches_score_equation_roots(x: int, n: int, z: float) -> None:
    assert wilson_interval(x, n, z) == pytest.approx(reference_wilson(x, n, z), abs=1e-9)


def test_wilson_published_example() -> None:
    # Newcombe (1998a, Stat Med 17:857, Table I): 81/263 -> Wilson 95% CI 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263, Z95)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


# --------------------------------------------------------------------------- #
# Relative lift, p-value, chance to win
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        ((1000, 100), (1000, 120)),
        ((80, 48), (70, 56)),
        ((25_000, 23_750), (24_800, 23_790)),
        ((5000, 400), (5100, 360)),
    ],
)
def test_proportion_relative_matches_hand_formula(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    (n_c, x_c), (n_t, x_t) = control, treatment
    lift, se = reference_relative(x_c / n_c, n_c, x_t / n_t, n_t)
    result = proportion_test(control, treatment)
    assert result.relative_lift == pytest.approx(lift, abs=1e-10)
    assert result.ci_low == pytest.approx(lift - Z95 * se, abs=1e-8)
    assert result.ci_high == pytest.approx(lift + Z95 * se, abs=1e-8)
    assert result.p_value == pytest.approx(2 * norm.sf(abs(lift / se)), abs=1e-8)
    assert result.chance_to_win == pytest.approx(norm.cdf(lift / se), abs=1e-8)
    assert result.control_rate == x_c / n_c and result.treatment_rate == x_t / n_t


def test_proportion_known_numbers_worked_by_hand() -> None:
    # 100/1000 vs 120/1000: lift 0.2; se = 1.2 * sqrt(0.88/120 + 0.9/100) = 0.153362...
    # z = 1.30409..., p = 2 * (1 - Phi(z)) = 0.19220, CI 0.2 -/+ 1.959964 * se.
    result = proportion_test((1000, 100), (1000, 120))
    se = 1.2 * math.sqrt(0.88 / 120 + 0.9 / 100)
    assert se == pytest.approx(0.153362, abs=1e-6)
    assert result.p_value == pytest.approx(0.19220, abs=5e-5)
    assert result.ci_low == pytest.approx(-0.10058, abs=5e-5)
    assert result.ci_high == pytest.approx(0.50058, abs=5e-5)
    assert result.chance_to_win == pytest.approx(0.90390, abs=5e-5)


def test_chance_to_win_is_one_minus_half_p_not_one_minus_p() -> None:
    result = proportion_test((10_000, 1000), (10_000, 1060))
    assert result.relative_lift is not None and result.relative_lift > 0
    assert result.chance_to_win == pytest.approx(1 - result.p_value / 2, abs=1e-12)
    assert abs(result.chance_to_win - (1 - result.p_value)) > 0.01
    assert "not 1 - p" in CHANCE_TO_WIN_EXPLAINED


def test_lower_is_better_flips_chance_to_win() -> None:
    up = proportion_test((4000, 200), (4000, 240))
    down = proportion_test((4000, 200), (4000, 240), higher_is_better=False)
    assert down.chance_to_win == pytest.approx(1 - up.chance_to_win, abs=1e-12)
    assert effect_direction(proportion_test((4000, 200), (4000, 300), higher_is_better=False)) == "worse"


# --------------------------------------------------------------------------- #
# 0 % and 100 % arms
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("control", "treatment", "relative_defined"),
    [
        ((500, 0), (500, 0), False),
        ((500, 0), (500, 7), False),
        ((500, 500), (500, 500), False),
        ((500, 500), (500, 497), True),
        ((500, 3), (500, 500), True),
        ((500, 500), (500, 0), False),
        ((1, 1), (1, 0), False),
    ],
)
def test_boundary_arms_give_absolute_result_and_note(
    control: tuple[int, int], treatment: tuple[int, int], relative_defined: bool
) -> None:
    result = proportion_test(control, treatment)
    for value in (
        result.abs_lift,
        result.abs_ci_low,
        result.abs_ci_high,
        result.control_rate,
        result.treatment_rate,
    ):
        assert math.isfinite(value)
    assert -100 <= result.abs_ci_low <= result.abs_lift <= result.abs_ci_high <= 100
    assert ("0%" in result.note) or ("100%" in result.note)
    if control[1] == 0:
        assert result.relative_lift is None and "undefined" in result.note
    assert (result.ci_low is not None) == relative_defined
    for field in (result.relative_lift, result.ci_low, result.ci_high, result.p_value, result.chance_to_win):
        assert field is None or math.isfinite(field)


@pytest.mark.parametrize("arm", [(0, 0), (10, 11), (10, -1)])
def test_invalid_arms_raise(arm: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        proportion_test(arm, (10, 5))


@settings(max_examples=200, deadline=None)
@given(
    n_c=st.integers(1, 5000),
    n_t=st.integers(1, 5000),
    frac_c=st.floats(0, 1),
    frac_t=st.floats(0, 1),
    sequential=st.booleans(),
)
def test_any_valid_counts_give_finite_ordered_results(
    n_c: int, n_t: int, frac_c: float, frac_t: float, sequential: bool
) -> None:
    control, treatment = (n_c, round(frac_c * n_c)), (n_t, round(frac_t * n_t))
    result = proportion_test(control, treatment, sequential=sequential)
    assert -100 <= result.abs_ci_low <= result.abs_lift + 1e-9
    assert result.abs_lift <= result.abs_ci_high + 1e-9 and result.abs_ci_high <= 100
    if result.p_value is not None:
        assert 0 <= result.p_value <= 1 and 0 <= result.chance_to_win <= 1
        assert result.ci_low <= result.relative_lift <= result.ci_high


# --------------------------------------------------------------------------- #
# Sequential (always-valid) intervals
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(("control", "treatment"), [((1000, 100), (1000, 120)), ((6000, 600), (6100, 690))])
@pytest.mark.parametrize("tuning_n", [5000.0, 20_000.0])
def test_sequential_interval_and_p_match_growthbook_formulas(
    control: tuple[int, int], treatment: tuple[int, int], tuning_n: float
) -> None:
    (n_c, x_c), (n_t, x_t) = control, treatment
    lift, se = reference_relative(x_c / n_c, n_c, x_t / n_t, n_t)
    result = proportion_test(control, treatment, sequential=True, tuning_n=tuning_n)
    half = reference_sequential_halfwidth(se, n_c + n_t, 0.05, tuning_n)
    assert result.ci_low == pytest.approx(lift - half, abs=1e-8)
    assert result.ci_high == pytest.approx(lift + half, abs=1e-8)
    assert result.p_value == pytest.approx(
        reference_sequential_p(lift, se, n_c + n_t, 0.05, tuning_n), abs=1e-10
    )
    fixed = proportion_test(control, treatment)
    assert result.ci_high - result.ci_low > fixed.ci_high - fixed.ci_low
    assert result.abs_ci_high - result.abs_ci_low > fixed.abs_ci_high - fixed.abs_ci_low


@pytest.mark.parametrize("n_total", [200, 2000, 5000, 50_000, 2_000_000])
def test_sequential_p_crosses_alpha_exactly_at_the_interval_edge(n_total: int) -> None:
    z_star = sequential_critical_z(n_total, 0.05)
    assert z_star > Z95  # always wider than the fixed-horizon interval
    assert sequential_p_value(z_star, n_total, 0.05) == pytest.approx(0.05, rel=1e-9)
    assert (
        sequential_p_value(z_star * 1.01, n_total, 0.05)
        < 0.05
        < sequential_p_value(z_star * 0.99, n_total, 0.05)
    )


# --------------------------------------------------------------------------- #
# A/A simulations: false-positive rates, peeking, coverage, power
# --------------------------------------------------------------------------- #
def binomial_tolerance(rate: float, trials: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / trials)


def test_aa_fixed_horizon_false_positive_rate_is_alpha() -> None:
    rng = np.random.default_rng(20240601)
    experiments, n, rate = 2000, 3000, 0.08
    x_c, x_t = rng.binomial(n, rate, experiments), rng.binomial(n, rate, experiments)
    p_values = np.array([proportion_test((n, c), (n, t)).p_value for c, t in zip(x_c, x_t, strict=True)])
    fpr = np.mean(p_values < 0.05)
    assert abs(fpr - 0.05) < binomial_tolerance(0.05, experiments)


def test_daily_peeking_sequential_keeps_fpr_below_alpha_and_naive_does_not() -> None:
    rng = np.random.default_rng(14)
    experiments, looks, daily_users, rate = 2000, 14, 400, 0.10
    conv_c = rng.binomial(daily_users, rate, (experiments, looks)).cumsum(axis=1)
    conv_t = rng.binomial(daily_users, rate, (experiments, looks)).cumsum(axis=1)
    naive_hit = np.zeros(experiments, dtype=bool)
    sequential_hit = np.zeros(experiments, dtype=bool)
    for day in range(looks):
        users = daily_users * (day + 1)
        for i in range(experiments):
            control, treatment = (users, int(conv_c[i, day])), (users, int(conv_t[i, day]))
            naive_hit[i] |= proportion_test(control, treatment).p_value < 0.05
            sequential_hit[i] |= proportion_test(control, treatment, sequential=True).p_value < 0.05
    tolerance = binomial_tolerance(0.05, experiments)
    # Peeking at a fixed-horizon test 14 times roughly quadruples the error rate:
    assert naive_hit.mean() > 0.05 + 2 * tolerance
    assert sequential_hit.mean() <= 0.05 + tolerance


def test_interval_covers_true_lift_at_nominal_rate() -> None:
    rng = np.random.default_rng(3)
    experiments, n, p_c, p_t = 2000, 4000, 0.10, 0.115
    x_c, x_t = rng.binomial(n, p_c, experiments), rng.binomial(n, p_t, experiments)
    results = [proportion_test((n, c), (n, t)) for c, t in zip(x_c, x_t, strict=True)]
    relative_cover = np.mean([r.ci_low <= p_t / p_c - 1 <= r.ci_high for r in results])
    absolute_cover = np.mean([r.abs_ci_low <= 100 * (p_t - p_c) <= r.abs_ci_high for r in results])
    tolerance = binomial_tolerance(0.95, experiments)
    assert abs(relative_cover - 0.95) < tolerance
    assert abs(absolute_cover - 0.95) < tolerance


def test_required_sample_size_delivers_the_promised_power() -> None:
    baseline, mde = 0.10, 0.15
    n = required_sample_size(baseline, mde)
    rng = np.random.default_rng(11)
    experiments = 2000
    x_c = rng.binomial(n, baseline, experiments)
    x_t = rng.binomial(n, baseline * (1 + mde), experiments)
    results = [proportion_test((n, c), (n, t)) for c, t in zip(x_c, x_t, strict=True)]
    power = np.mean([r.p_value < 0.05 and r.relative_lift > 0 for r in results])
    assert abs(power - 0.80) < binomial_tolerance(0.80, experiments)


# --------------------------------------------------------------------------- #
# SRM
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("counts", "weights"),
    [
        ([5050, 4950], [1, 1]),
        ([5200, 4800], [0.5, 0.5]),
        ([980, 1010, 2150], [1, 1, 2]),
        ([300, 700], [0.25, 0.75]),
    ],
)
def test_srm_matches_scipy_chisquare(counts: list[int], weights: list[float]) -> None:
    expected = np.array(weights) / sum(weights) * sum(counts)
    assert srm_p_value(counts, weights) == pytest.approx(
        chisquare(counts, expected).pvalue, rel=1e-10, abs=1e-300
    )


def test_srm_needs_eight_expected_units_per_arm_but_flags_an_empty_arm() -> None:
    assert srm_p_value([7, 8], [1, 1]) is None  # expects 7.5 per arm
    assert srm_p_value([8, 8], [1, 1]) == pytest.approx(1.0)
    assert srm_p_value([15, 1], [1, 1]) is not None  # expects 8 per arm: tested
    broken = srm_check([1000, 0], [1, 1])
    assert not broken.ok and broken.p_value < 1e-100 and "do not ship" in broken.message


def test_srm_check_flag_and_threshold() -> None:
    fine = srm_check([5050, 4950], [1, 1])
    assert fine.ok and fine.p_value == pytest.approx(chisquare([5050, 4950]).pvalue)
    mismatch = srm_check([5300, 4700], [1, 1])
    assert not mismatch.ok and "mismatch" in mismatch.message.lower()
    assert srm_check([5300, 4700], [1, 1], threshold=1e-12).ok
    early = srm_check([3, 4], [1, 1])
    assert early.ok and early.p_value is None and early.expected == (3.5, 3.5)


# --------------------------------------------------------------------------- #
# A/B/n with Holm
# --------------------------------------------------------------------------- #
def test_holm_adjust_hand_computed() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3*0.01=0.03, 2*0.03=0.06, max(0.06, 1*0.04)=0.06
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # sorted 0.002, 0.02, 0.3, 0.6 -> 0.008, 0.06, 0.6, max(0.6, 0.6)=0.6; caps at 1
    assert holm_adjust([0.3, 0.002, 0.6, 0.02]) == pytest.approx([0.6, 0.008, 0.6, 0.06])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_compare_variants_holm_and_widened_interval() -> None:
    arms = [Arm("A", 8000, 800), Arm("B", 8000, 880), Arm("C", 8000, 905), Arm("D", 8000, 790)]
    comparisons = compare_variants(arms)
    raw = []
    for arm in arms[1:]:
        lift, se = reference_relative(0.1, 8000, arm.conversions / 8000, 8000)
        raw.append(2 * norm.sf(abs(lift / se)))
    # Holm by hand on the raw values: order them, multiply by 3, 2, 1, running max.
    order = np.argsort(raw)
    by_hand = np.empty(3)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw[index]))
        by_hand[index] = running
    assert [c.p_value for c in comparisons] == pytest.approx(raw, abs=1e-10)
    assert [c.p_value_adjusted for c in comparisons] == pytest.approx(list(by_hand), abs=1e-10)
    # Intervals at alpha / 3: half-width / se must equal z_{1 - 0.05/6}.
    b = comparisons[0]
    lift, se = reference_relative(0.1, 8000, 0.11, 8000)
    assert b.ci_alpha == pytest.approx(0.05 / 3)
    assert (b.result.ci_high - lift) / se == pytest.approx(norm.ppf(1 - 0.05 / 6), abs=1e-8)
    assert [c.treatment for c in comparisons] == ["B", "C", "D"] and b.control == "A"


def test_compare_variants_bonferroni_and_none() -> None:
    arms = [Arm("A", 5000, 500), Arm("B", 5000, 560), Arm("C", 5000, 540)]
    bonferroni = compare_variants(arms, correction="bonferroni")
    none = compare_variants(arms, correction="none")
    for b, n in zip(bonferroni, none, strict=True):
        assert b.p_value_adjusted == pytest.approx(min(1.0, 2 * n.p_value))
        assert n.p_value_adjusted == n.p_value and n.ci_alpha == 0.05


# --------------------------------------------------------------------------- #
# Mean and ratio metrics
# --------------------------------------------------------------------------- #
def mean_stats(values: np.ndarray) -> MeanStats:
    return MeanStats(n=len(values), sum=float(values.sum()), sum_squares=float((values**2).sum()))


def ratio_stats(x: np.ndarray, y: np.ndarray) -> RatioStats:
    return RatioStats(
        n=len(x),
        sum_x=float(x.sum()),
        sum_x2=float((x * x).sum()),
        sum_y=float(y.sum()),
        sum_y2=float((y * y).sum()),
        sum_xy=float((x * y).sum()),
    )


def test_mean_test_matches_welch_delta_from_raw_data() -> None:
    rng = np.random.default_rng(5)
    control, treatment = rng.exponential(30.0, 800), rng.exponential(27.0, 900)
    result = mean_test(mean_stats(control), mean_stats(treatment), higher_is_better=False)
    m_c, m_t = control.mean(), treatment.mean()
    se_c, se_t = control.std(ddof=1) / math.sqrt(800), treatment.std(ddof=1) / math.sqrt(900)
    lift = m_t / m_c - 1
    se = (m_t / m_c) * math.hypot(se_t / m_t, se_c / m_c)
    assert result.relative_lift == pytest.approx(lift, abs=1e-10)
    assert (result.ci_low, result.ci_high) == pytest.approx((lift - Z95 * se, lift + Z95 * se), abs=1e-8)
    assert result.p_value == pytest.approx(2 * norm.sf(abs(lift / se)), abs=1e-8)
    assert result.chance_to_win == pytest.approx(norm.cdf(-lift / se), abs=1e-8)  # lower is better
    assert result.abs_diff == pytest.approx(m_t - m_c)


def cost_per_conversion_arm(
    rng: np.random.Generator, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user cost and conversions; users sent more messages convert more, so x and y correlate."""
    messages = 1 + rng.poisson(1.0, shape)
    conversions = (rng.random(shape) < np.where(messages > 1, 0.6, 0.05)).astype(float)
    return 0.0079 * messages, conversions


def test_ratio_test_matches_matrix_delta_method() -> None:
    rng = np.random.default_rng(9)
    (x_c, y_c), (x_t, y_t) = cost_per_conversion_arm(rng, (700,)), cost_per_conversion_arm(rng, (650,))
    result = ratio_test(ratio_stats(x_c, y_c), ratio_stats(x_t, y_t), higher_is_better=False)

    def ratio_and_variance(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        mu = np.array([x.mean(), y.mean()])
        gradient = np.array([1 / mu[1], -mu[0] / mu[1] ** 2])
        return mu[0] / mu[1], float(gradient @ np.cov(np.vstack([x, y])) @ gradient) / len(x)

    (r_c, v_c), (r_t, v_t) = ratio_and_variance(x_c, y_c), ratio_and_variance(x_t, y_t)
    gradient = np.array([-r_t / r_c**2, 1 / r_c])
    se = math.sqrt(gradient @ np.diag([v_c, v_t]) @ gradient)
    lift = r_t / r_c - 1
    assert result.control_value == pytest.approx(x_c.sum() / y_c.sum(), rel=1e-12)
    assert result.relative_lift == pytest.approx(lift, abs=1e-10)
    assert (result.ci_low, result.ci_high) == pytest.approx((lift - Z95 * se, lift + Z95 * se), abs=1e-8)
    assert result.p_value == pytest.approx(2 * norm.sf(abs(lift / se)), abs=1e-8)
    assert result.chance_to_win == pytest.approx(norm.cdf(-lift / se), abs=1e-8)


def test_ratio_delta_se_matches_simulated_spread_and_needs_covariance() -> None:
    rng = np.random.default_rng(21)
    experiments, n = 2000, 500
    (x_c, y_c), (x_t, y_t) = (
        cost_per_conversion_arm(rng, (experiments, n)),
        cost_per_conversion_arm(rng, (experiments, n)),
    )
    results = [
        ratio_test(ratio_stats(x_c[i], y_c[i]), ratio_stats(x_t[i], y_t[i]), higher_is_better=False)
        for i in range(experiments)
    ]
    lifts = np.array([r.relative_lift for r in results])
    delta_se = math.sqrt(np.mean([((r.ci_high - r.ci_low) / (2 * Z95)) ** 2 for r in results]))
    assert delta_se / lifts.std(ddof=1) == pytest.approx(1.0, abs=0.06)

    # Ignoring the x-y covariance would overstate the se by far more than that tolerance:
    def no_cov_var(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        mx, my = x.mean(1), y.mean(1)
        return (x.var(1, ddof=1) / my**2 + y.var(1, ddof=1) * mx**2 / my**4) / n

    r_c, r_t = x_c.sum(1) / y_c.sum(1), x_t.sum(1) / y_t.sum(1)
    no_cov_se = math.sqrt(np.mean(no_cov_var(x_t, y_t) / r_c**2 + no_cov_var(x_c, y_c) * r_t**2 / r_c**4))
    assert no_cov_se / lifts.std(ddof=1) > 1.1
    # And it is an A/A comparison, so the false-positive rate is alpha.
    fpr = np.mean([r.p_value < 0.05 for r in results])
    assert abs(fpr - 0.05) < binomial_tolerance(0.05, experiments)


def test_ratio_with_unit_denominator_equals_mean_test() -> None:
    rng = np.random.default_rng(2)
    x_c, x_t = rng.gamma(2.0, 1.5, 400), rng.gamma(2.0, 1.7, 420)
    ratio = ratio_test(ratio_stats(x_c, np.ones(400)), ratio_stats(x_t, np.ones(420)), sequential=True)
    mean = mean_test(mean_stats(x_c), mean_stats(x_t), sequential=True)
    for field in ("relative_lift", "ci_low", "ci_high", "p_value", "chance_to_win"):
        assert getattr(ratio, field) == pytest.approx(getattr(mean, field), abs=1e-9)


def test_ratio_without_conversions_has_a_note_not_an_error() -> None:
    control = RatioStats(n=50, sum_x=0.4, sum_x2=0.004, sum_y=0, sum_y2=0, sum_xy=0)
    treatment = RatioStats(n=50, sum_x=0.4, sum_x2=0.004, sum_y=3, sum_y2=3, sum_xy=0.03)
    result = ratio_test(control, treatment, higher_is_better=False)
    assert result.control_value is None and result.relative_lift is None and result.p_value is None
    assert "denominator is 0" in result.note


# --------------------------------------------------------------------------- #
# Power, MDE, days needed
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("baseline", "mde", "alpha", "power"),
    [(0.10, 0.10, 0.05, 0.8), (0.02, 0.25, 0.05, 0.9), (0.95, -0.01, 0.01, 0.8), (0.5, 0.05, 0.1, 0.8)],
)
def test_required_sample_size_matches_standard_formula(
    baseline: float, mde: float, alpha: float, power: float
) -> None:
    assert required_sample_size(baseline, mde, alpha, power) == math.ceil(
        per_arm_users_formula(baseline, mde, alpha, power)
    )


def test_required_sample_size_bonferroni_for_more_variants() -> None:
    assert required_sample_size(0.1, 0.1, n_variants=4) == math.ceil(
        per_arm_users_formula(0.1, 0.1, 0.05 / 3, 0.8)
    )


def test_sequential_sample_size_hits_power_at_the_boundary() -> None:
    n = required_sample_size(0.1, 0.1, sequential=True)
    sigma = math.sqrt(per_arm_users_formula(0.1, 0.1, 0.05, 0.8) / (Z95 + norm.ppf(0.8)) ** 2 * 0.1**2)

    def power_at(users: float) -> float:
        return norm.cdf(math.sqrt(users) * 0.1 / sigma - sequential_critical_z(2 * users, 0.05))

    assert power_at(n) >= 0.8 > power_at(n - 1)
    assert n > required_sample_size(0.1, 0.1)


@pytest.mark.parametrize(("baseline", "users"), [(0.10, 16_232), (0.03, 50_000), (0.9, 2_000)])
def test_minimum_detectable_effect_inverts_sample_size(baseline: float, users: int) -> None:
    mde = minimum_detectable_effect(baseline, users)
    assert mde is not None
    assert per_arm_users_formula(baseline, mde, 0.05, 0.8) == pytest.approx(users, rel=1e-6)


def test_minimum_detectable_effect_edge_cases() -> None:
    assert minimum_detectable_effect(0.1, 0) is None
    assert minimum_detectable_effect(0.5, 3) is None  # even 50% -> 100% is not detectable with 3 users


def test_days_needed() -> None:
    needed = required_sample_size(0.1, 0.1)  # 16,232 per arm
    assert days_needed(0.1, 0.1, users_so_far_per_arm=4000, days_so_far=4) == math.ceil(
        (needed - 4000) / 1000
    )
    assert days_needed(0.1, 0.1, users_so_far_per_arm=needed, days_so_far=9) == 0
    assert days_needed(0.1, 0.1, users_so_far_per_arm=0, days_so_far=3) is None
    assert days_needed(0.1, 0.1, users_so_far_per_arm=100, days_so_far=0) is None


# --------------------------------------------------------------------------- #
# Verdict
# --------------------------------------------------------------------------- #
def flat_guardrail() -> ProportionResult:
    return proportion_test((20_000, 19_000), (20_000, 19_010))


def flat_cost() -> RelativeResult:
    return mean_test(MeanStats(2000, 16.0, 0.13), MeanStats(2000, 16.0, 0.13), higher_is_better=False)


def test_verdict_ship_sentence() -> None:
    primary = proportion_test((20_000, 2000), (20_000, 2180))
    # By hand: se = 1.09 * sqrt(0.891 / 2180 + 0.9 / 2000) = 0.031941; 0.09 -/+ 1.96 * se.
    lift, se = reference_relative(0.1, 20_000, 0.109, 20_000)
    result = verdict(
        primary,
        guardrails={"delivery": flat_guardrail(), "cost": flat_cost()},
        srm=srm_check([20_000, 20_000], [1, 1]),
    )
    assert result.decision == "ship"
    expected = (
        f"Ship B: conversion {100 * lift:+.1f}% (95% CI {100 * (lift - Z95 * se):+.1f}% to "
        f"{100 * (lift + Z95 * se):+.1f}%), >99% chance to beat A; delivery and cost unchanged"
    )
    assert (
        result.sentence
        == expected
        == (
            "Ship B: conversion +9.0% (95% CI +2.7% to +15.3%), >99% chance to beat A; delivery and cost unchanged"
        )
    )


def test_verdict_srm_blocks_even_a_winner() -> None:
    primary = proportion_test((20_000, 2000), (20_000, 2400))
    result = verdict(primary, srm=srm_check([21_000, 19_000], [1, 1]))
    assert result.decision == "blocked: SRM" and "mismatch" in result.sentence.lower()


def test_verdict_hurt_guardrail_means_do_not_ship() -> None:
    primary = proportion_test((20_000, 2000), (20_000, 2400))
    delivery = proportion_test((20_000, 19_000), (20_000, 18_700))
    cost_up = mean_test(MeanStats(2000, 16.0, 0.13), MeanStats(2000, 18.0, 0.17), higher_is_better=False)
    result = verdict(primary, guardrails={"delivery": delivery, "cost": cost_up})
    assert result.decision == "do not ship"
    assert result.sentence.startswith("Do not ship B: it hurts delivery -1.6% (95% CI")
    assert " and cost +12.5% (95% CI" in result.sentence


def test_verdict_primary_worse() -> None:
    result = verdict(
        proportion_test((20_000, 2000), (20_000, 1800)), control_name="Old", treatment_name="New"
    )
    assert result.decision == "do not ship" and result.sentence.startswith(
        "Do not ship New: conversion -10.0%"
    )
    assert "<1% chance to beat Old" in result.sentence


def test_verdict_keep_running_and_stop() -> None:
    inconclusive = proportion_test((4000, 400), (4000, 410))
    keep = verdict(inconclusive, days_more=6, mde_relative=0.02)
    assert keep.decision == "keep running"
    assert keep.sentence.startswith("Keep running: about 6 more days to detect a 2% lift")
    unknown = verdict(inconclusive, days_more=None)
    assert unknown.decision == "keep running" and "how long" in unknown.sentence
    assert verdict(inconclusive, days_more=0, mde_relative=0.02).decision == "stop: no effect likely"
    # Interval inside +/-5% rules out the 5% lift we care about, even before the planned end.
    tight = proportion_test((200_000, 20_000), (200_000, 20_050))
    assert verdict(tight, days_more=3, mde_relative=0.05).decision == "stop: no effect likely"


def test_verdict_uses_absolute_interval_when_relative_is_undefined() -> None:
    result = verdict(proportion_test((2000, 0), (2000, 40)), metric_name="reply rate")
    assert result.decision == "ship" and "pp" in result.sentence


def test_verdict_reads_corrected_interval_from_compare_variants() -> None:
    arms = [Arm("A", 8000, 800), Arm("B", 8000, 880), Arm("C", 8000, 905)]
    c = compare_variants(arms)[1]
    result = verdict(c.result, treatment_name="C")
    assert "97.5% CI" in result.sentence
    assert isinstance(srm_check([8000, 8000, 8000], [1, 1, 1]), SrmResult)
