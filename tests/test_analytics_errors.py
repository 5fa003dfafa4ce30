"""switchboard.analytics.errors on a hand-built warehouse.

Previous day P = D0-1: 100 SMS: 95 delivered, 3 x 30003 (undelivered), 2 x 30008 (undelivered).
Current day D0:        100 SMS: 85 delivered, 10 x 30007, 3 x 30003 (undelivered), 2 x 21610 (failed).
  failures 15; 30007: share 10/15, error_rate 0.10, new (0 before);
  30003: 3 and 3 -> steady; 21610: 2, new; 30008: gone (not in the current top list).
  new_or_rising(min_failures=5): 30007 only. One-sided z for 10/100 vs 0/100:
  pooled 0.05, se = sqrt(.05 * .95 * .02) = 0.030822, z = 3.2444, p = 0.000589;
  BH over the 4 codes seen: q = 4 * p = 0.00236 <= 0.01.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from switchboard.analytics import errors
from switchboard.analytics.filters import Filters
from tests.test_analytics_warehouse import D0, Hand, empty_warehouse

P = D0 - timedelta(days=1)


@pytest.fixture(scope="module")
def con():
    h = Hand()
    for i in range(95):
        h.sms(day=P)
    for code in (30003, 30003, 30003, 30008, 30008):
        h.sms(day=P, status="undelivered", error=code)
    for i in range(85):
        h.sms(day=D0)
    for i in range(10):
        h.sms(day=D0, status="undelivered", error=30007, hour=1 + i, carrier="Indosat Ooredoo Hutchison")
    for code in (30003, 30003, 30003):
        h.sms(day=D0, status="undelivered", error=code)
    for _ in range(2):
        h.sms(day=D0, status="failed", error=21610, country="BR", carrier="Vivo")
    return h.build()


def test_top_errors(con):
    df = errors.top_errors(con, start=D0, end=D0)
    assert list(df.columns) == errors.TOP_ERRORS_COLUMNS
    assert list(df["error_code"]) == [30007, 30003, 21610]
    top = df.iloc[0]
    assert top.error_name == "Message filtered" and top.category == "carrier-filtered"
    assert top.failures == 10 and top.share_of_failures == pytest.approx(10 / 15)
    assert top.error_rate == pytest.approx(0.10) and top.failures_prev == 0
    assert not top.retryable and "carrier rules" in top.what_to_do
    steady = df.iloc[1]
    assert steady.failures_prev == 3 and steady.rate_change == pytest.approx(0)
    # the default rule wants 20 failures: every code here is too few to tell (and the banner is empty)
    assert set(df["trend"]) == {"too few to tell"}
    assert errors.new_or_rising_errors(con, start=D0, end=D0).empty
    # with the banner's test at 5 failures: 30007 (0 -> 10) is new, in the table as in the banner
    five = errors.top_errors(con, start=D0, end=D0, min_failures=5).set_index("error_code")["trend"]
    assert five[30007] == "new" and five[30003] == "too few to tell" and five[21610] == "too few to tell"
    assert len(errors.top_errors(con, start=D0, end=D0, limit=1)) == 1


def test_new_or_rising_is_statistically_real(con):
    df = errors.new_or_rising_errors(con, start=D0, end=D0, min_failures=5)
    assert list(df.columns) == errors.NEW_OR_RISING_COLUMNS
    assert list(df["error_code"]) == [30007]
    row = df.iloc[0]
    assert row.status == "new" and row.failures == 10 and row.excess_failures == pytest.approx(10)
    assert row.p_value == pytest.approx(0.000589, rel=0.01)
    assert row.q_value == pytest.approx(4 * 0.000589, rel=0.01)
    # the default minimum size (20 failures) keeps a 10-message blip out
    assert errors.new_or_rising_errors(con, start=D0, end=D0).empty


def test_rising_needs_the_ratio(con):
    # 30003 went 3 -> 3: never rising, whatever the thresholds
    df = errors.new_or_rising_errors(con, start=D0, end=D0, min_failures=1, alpha=0.5, min_ratio=1.0)
    assert 30003 not in set(df["error_code"])


def test_error_samples(con):
    df = errors.error_samples(con, 30007, start=D0, end=D0, n=3)
    assert list(df.columns) == errors.SAMPLE_COLUMNS
    assert len(df) == 3 and set(df["error_code"]) == {30007}
    assert list(df["sent_at"]) == sorted(df["sent_at"], reverse=True)  # newest first
    assert df["sent_at"].iloc[0].hour == 10
    assert errors.error_samples(con, 30007, start=P, end=P).empty
    assert errors.error_samples(con, 30007, start=D0, end=D0, n=0).empty
    assert errors.error_samples(con, 30007, start=D0, end=D0,
                                filters=Filters(extra=(("carrier", "Telkomsel"),))).empty


def test_error_trend_zero_fills_days_and_codes(con):
    df = errors.error_trend(con, start=P, end=D0, top_n=2)
    assert list(df.columns) == errors.TREND_COLUMNS
    # top 2 over both days: 30007 (10) and 30003 (6)
    assert list(df["error_code"]) == [30007, 30003, 30007, 30003]
    assert list(df["failures"]) == [0, 3, 10, 3]
    assert list(df["sent"]) == [100, 100, 100, 100]
    assert df["error_rate"].iloc[2] == pytest.approx(0.10)
    assert df["error_name"].iloc[0] == "Message filtered"


def test_filters_apply(con):
    df = errors.top_errors(con, start=D0, end=D0, filters=Filters(countries=("BR",)))
    assert list(df["error_code"]) == [21610]
    assert df.iloc[0].share_of_failures == 1.0
    assert errors.top_errors(con, start=D0, end=D0, filters=Filters(countries=("' OR 1=1 --",))).empty


def test_empty_warehouse():
    con = empty_warehouse()
    assert list(errors.top_errors(con, start=D0, end=D0).columns) == errors.TOP_ERRORS_COLUMNS
    assert list(errors.new_or_rising_errors(con, start=D0, end=D0).columns) == errors.NEW_OR_RISING_COLUMNS
    assert list(errors.error_samples(con, 30007, start=D0, end=D0).columns) == errors.SAMPLE_COLUMNS
    assert list(errors.error_trend(con, start=D0, end=D0).columns) == errors.TREND_COLUMNS


# --------------------------------------------------------------------------- one word, one definition

def _drift_warehouse(now_30007: int):
    """1,000 SMS a day on P and D0; 30007 fails 70 on P and ``now_30007`` on D0; 30003 fails 40 then 40;
    21610 fails 60 then 20 (falling); 30008 fails 25 on D0 only (new)."""
    h = Hand()
    for day, counts in ((P, {30007: 70, 30003: 40, 21610: 60}), (D0, {30007: now_30007, 30003: 40, 21610: 20,
                                                                      30008: 25})):
        failed = 0
        for code, k in counts.items():
            for i in range(k):
                h.sms(day=day, status="undelivered", error=code, hour=i % 24)
            failed += k
        for i in range(1000 - failed):
            h.sms(day=day, hour=i % 24)
    return h.build()


@pytest.mark.parametrize("now_30007, expected", [(100, "steady"), (150, "rising")])
def test_banner_and_table_agree_on_rising(now_30007, expected):
    """The issue's case: 30007 up 43 % (70 -> 100 of 1,000), significant for a lone two-sided test at 5 %,
    was "rising" in the table while the banner said nothing was. One rule now serves both: +43 % is
    below the 1.5x a rise needs, so neither calls it rising; at 150 (2.1x) both do."""
    con = _drift_warehouse(now_30007)
    banner = errors.new_or_rising_errors(con, start=D0, end=D0)
    table = errors.top_errors(con, start=D0, end=D0, limit=50).set_index("error_code")
    assert table.loc[30007, "trend"] == expected
    assert table.loc[30008, "trend"] == "new" and table.loc[21610, "trend"] == "falling"
    assert table.loc[30003, "trend"] == "steady"
    flagged = set(table.index[table["trend"].isin(["new", "rising"])])
    assert set(banner["error_code"]) == flagged
    assert dict(zip(banner["error_code"], banner["status"])) == table.loc[sorted(flagged), "trend"].to_dict()
    # any thresholds: the table's new/rising codes are exactly the banner's
    for rule in ({"alpha": 0.5, "min_failures": 1, "min_ratio": 1.0}, {"min_failures": 30},
                 {"alpha": 0.05, "min_ratio": 1.2}):
        banner = errors.new_or_rising_errors(con, start=D0, end=D0, **rule)
        table = errors.top_errors(con, start=D0, end=D0, limit=50, **rule)
        assert set(banner["error_code"]) == set(table.loc[table["trend"].isin(["new", "rising"]), "error_code"])


def test_trend_words_are_explained_with_the_rules_thresholds():
    text = errors.trend_explained()
    assert f"{errors.RISING_MIN_RATIO:g}×" in text and str(errors.RISING_MIN_FAILURES) in text
    assert all(word.capitalize() in text for word in errors.TRENDS)
