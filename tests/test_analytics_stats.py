"""switchboard.analytics.stats_basic against numbers worked out by hand (or in R / textbooks)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from switchboard.analytics.stats_basic import (
    benjamini_hochberg,
    change_point,
    fisher_one_sided,
    mean_change_point,
    relative_change,
    safe_div,
    two_proportion_z,
    welch_z,
    wilson_interval,
)


def wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_wilson_known_values():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(7, 9)
    assert (low, high) == pytest.approx(wilson_by_hand(7, 9))


def test_wilson_empty_is_nan_and_vectorised():
    low, high = wilson_interval([0, 3], [0, 3])
    assert math.isnan(low[0]) and math.isnan(high[0])
    assert high[1] == 1.0 and low[1] == pytest.approx(wilson_by_hand(3, 3)[0])


def test_two_proportion_z_known_value():
    # 45/100 vs 30/100: pooled 0.375, se = sqrt(.375 * .625 * .02) = 0.068465, z = 2.1909
    t = two_proportion_z(45, 100, 30, 100)
    assert float(t.z) == pytest.approx(2.1909, abs=1e-4)
    assert float(t.p_value) == pytest.approx(0.02846, abs=1e-4)
    greater = two_proportion_z(45, 100, 30, 100, "greater")
    assert float(greater.p_value) == pytest.approx(0.02846 / 2, abs=1e-4)
    less = two_proportion_z(45, 100, 30, 100, "less")
    assert float(less.p_value) == pytest.approx(1 - 0.02846 / 2, abs=1e-4)


def test_fisher_one_sided_is_the_exact_test_and_larger_than_z_on_small_rare_cells():
    # 18 failures of 99 against 67 of 923: by hand, the hypergeometric tail P(X >= 18) with 85 failures among
    # 1,022 messages of which 99 are recent (= scipy's fisher_exact, one-sided), 6.558e-4; the z test says 9.2e-5
    greater = fisher_one_sided([18, 5], [99, 0], [67, 1], [923, 10], "greater")
    assert float(greater.p_value[0]) == pytest.approx(6.558e-4, rel=1e-3)
    assert float(greater.p_value[0]) > 5 * float(two_proportion_z(18, 99, 67, 923, "greater").p_value)
    assert math.isnan(greater.p_value[1])  # empty sample
    # the same table seen from the delivered side, "less": identical
    less = fisher_one_sided(81, 99, 856, 923, "less")
    assert float(less.p_value) == pytest.approx(float(greater.p_value[0]), rel=1e-9)
    assert float(greater.p1[0]) == pytest.approx(18 / 99) and float(greater.z[0]) > 0
    # a large cell: the exact and z tests agree closely
    big_exact = float(fisher_one_sided(600, 10_000, 5_000, 100_000, "greater").p_value)
    big_z = float(two_proportion_z(600, 10_000, 5_000, 100_000, "greater").p_value)
    assert big_z < big_exact < 2 * big_z and big_exact < 1e-4
    with pytest.raises(ValueError):
        fisher_one_sided(1, 2, 1, 2, "two-sided")


def test_two_proportion_z_degenerate_cases():
    t = two_proportion_z([0, 5], [0, 10], [1, 0], [10, 10])
    assert math.isnan(t.p_value[0])  # empty sample: nothing to test
    same = two_proportion_z(0, 10, 0, 10)  # no variation at all
    assert float(same.z) == 0 and float(same.p_value) == 1.0
    with pytest.raises(ValueError):
        two_proportion_z(1, 2, 1, 2, "sideways")


def test_benjamini_hochberg_known_example():
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    # sorted .005 .01 .03 .04 -> x4/rank: .02 .02 .04 .04 (monotone from the top)
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])
    q = benjamini_hochberg([0.5, np.nan, 0.01])
    assert math.isnan(q[1]) and q[2] == pytest.approx(0.02) and q[0] == pytest.approx(0.5)
    assert benjamini_hochberg([]).size == 0


def test_welch_z():
    # means 1.1 vs 1.0, variances 0.04 each, n 100 each: z = 0.1 / sqrt(.0008) = 3.5355
    p = float(welch_z(1.1, 0.04, 100, 1.0, 0.04, 100))
    assert p == pytest.approx(2 * 0.000203, rel=0.02)
    assert float(welch_z(1.0, 0.0, 10, 1.0, 0.0, 10)) == 1.0
    assert math.isnan(float(welch_z(1.0, 0.0, 1, 1.0, 0.0, 10)))


def test_safe_div_and_relative_change():
    assert list(np.nan_to_num(safe_div([1, 1, 0], [2, 0, 0]), nan=-1)) == [0.5, -1, -1]
    assert float(relative_change(15, 10)) == pytest.approx(0.5)
    assert math.isnan(float(relative_change(3, 0)))


def test_change_point_finds_the_step():
    failed = [1, 0, 1, 0, 1, 8, 9, 8, 9]
    final = [20] * 9
    assert change_point(failed, final) == 5
    assert change_point([1], [10]) is None
    assert mean_change_point([10, 10, 10, 30, 30], [10] * 5) == 3



@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 99, 1000, 123457])
def test_wilson_bounds_are_exact_at_zero_and_all_successes(n: int) -> None:
    """Found by hypothesis in CI: at 0 successes the low bound came out as 5.55e-17, above the rate 0."""
    from switchboard.analytics.experiments_stats import wilson_interval as scalar_wilson

    low, _ = wilson_interval(0, n)
    _, high = wilson_interval(n, n)
    assert float(low) == 0.0 and float(high) == 1.0
    assert scalar_wilson(0, n, 1.959964)[0] == 0.0 and scalar_wilson(n, n, 1.959964)[1] == 1.0
