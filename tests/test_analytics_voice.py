"""switchboard.analytics.voice: call outcomes by hand.

Indonesia: 4 completed calls (10, 20, 30, 40 s; the 40 s one answered by a machine),
2 busy, 1 no-answer, 1 failed, 1 canceled, 1 still ringing; every call 0.10 USD.
  final = 9 -> answer_rate 4/9; durations of completed calls: p50 25, p90 37, mean 25;
  machine_share 1/4; cost 1.00; cost per answered 0.25.
Brazil: 1 completed call, 60 s.
"""

from __future__ import annotations

import pandas as pd
import pytest

from switchboard.analytics import voice
from switchboard.analytics.filters import Filters
from tests.test_analytics_stats import wilson_by_hand
from tests.test_analytics_warehouse import D0, Hand, empty_warehouse


@pytest.fixture(scope="module")
def con():
    h = Hand()
    for d in (10, 20, 30):
        h.call(duration=d)
    h.call(duration=40, answered_by="machine_start")
    for status in ("busy", "busy", "no-answer", "failed", "canceled", "ringing"):
        h.call(status=status, duration=0, answered_by=None)
    h.call(country="BR", carrier="Vivo", duration=60)
    return h.build()


def test_voice_by_country(con):
    df = voice.voice_by_country(con, start=D0, end=D0)
    assert list(df.columns) == voice.COUNTRY_COLUMNS
    assert list(df["country_iso2"]) == ["ID", "BR"]
    r = df.iloc[0]
    assert (r.country_iso3, r.country_name) == ("IDN", "Indonesia")
    assert (r.calls, r.completed, r.busy, r.no_answer, r.failed, r.canceled, r.in_progress) == (10, 4, 2, 1, 1, 1, 1)
    assert r.answer_rate == pytest.approx(4 / 9)
    assert (r.answer_ci_low, r.answer_ci_high) == pytest.approx(wilson_by_hand(4, 9))
    assert (r.duration_p50_s, r.duration_p90_s, r.duration_mean_s) == pytest.approx((25, 37, 25))
    assert r.machine_answered == 1 and r.machine_share == pytest.approx(0.25)
    assert r.cost_usd == pytest.approx(1.0) and r.cost_per_answered == pytest.approx(0.25)


def test_voice_summary_and_filters(con):
    s = voice.voice_summary(con, start=D0, end=D0).iloc[0]
    assert s.calls == 11 and s.completed == 5 and s.answer_rate == pytest.approx(5 / 10)
    br = voice.voice_by_country(con, start=D0, end=D0, filters=Filters(countries=("BR",)))
    assert list(br["country_iso2"]) == ["BR"] and br.iloc[0].duration_p50_s == 60
    assert voice.voice_by_country(con, start=D0, end=D0, filters=Filters(channels=("sms",))).empty


def test_empty_warehouse():
    con = empty_warehouse()
    assert list(voice.voice_by_country(con, start=D0, end=D0).columns) == voice.COUNTRY_COLUMNS
    s = voice.voice_summary(con, start=D0, end=D0)
    assert list(s.columns) == voice.SUMMARY_COLUMNS and s.iloc[0].calls == 0


def test_quantiles_from_counts_equal_duckdb_quantile_cont():
    """The numpy reading of quantiles off (key, value, count) rows gives DuckDB's quantile_cont and avg."""
    import duckdb
    import numpy as np

    from switchboard.analytics.stats_basic import quantiles_from_counts

    rng = np.random.default_rng(3)
    con = duckdb.connect()
    for trial in range(20):
        size = int(rng.integers(1, 400))
        keys = rng.choice(np.array(["US", "ID", None], dtype=object), size=size)
        values = rng.integers(0, 30 if trial % 2 else 3000, size=size)
        con.execute("CREATE OR REPLACE TABLE v (k VARCHAR, x INTEGER)")
        con.executemany("INSERT INTO v VALUES (?, ?)", [[k, int(x)] for k, x in zip(keys, values)])
        expected = {k: (p50, p90, mean) for k, p50, p90, mean in con.execute(
            "SELECT k, quantile_cont(x, 0.5), quantile_cont(x, 0.9), avg(x) FROM v GROUP BY k").fetchall()}
        rows = con.execute("SELECT k, x, count(*) FROM v GROUP BY ALL ORDER BY k, x").fetchnumpy()
        got = quantiles_from_counts(np.asarray(rows["k"], dtype=object), np.asarray(rows["x"]),
                                    np.asarray(rows["count_star()"]))
        assert set(got) == set(expected)
        for k, (p50, p90, mean) in expected.items():
            # the interpolation lo + d (hi - lo) can differ from DuckDB's own in the last bit (1 ulp)
            assert got[k][0] == pytest.approx(p50, rel=1e-12) and got[k][1] == pytest.approx(p90, rel=1e-12)
            assert got[k][2] == pytest.approx(mean, rel=1e-12)


def _voice_by_sql(con, start, end, flt) -> pd.DataFrame:
    """voice_by_country's counts and statistics in one plain aggregate over call_facts (no rollup, no
    pivot in Python): the oracle for the cells-then-pivot path."""
    from switchboard.analytics import _sql

    where, params = _sql.where_for("call_facts", start, end, flt)
    return con.execute(f"""
        SELECT country_iso2, count(*) AS calls,
               count(*) FILTER (WHERE status = 'completed') AS completed,
               count(*) FILTER (WHERE status = 'busy') AS busy,
               count(*) FILTER (WHERE status = 'no-answer') AS no_answer,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'canceled') AS canceled,
               count(*) FILTER (WHERE status NOT IN ('completed', 'busy', 'no-answer', 'failed', 'canceled'))
                   AS in_progress,
               count(*) FILTER (WHERE status = 'completed' AND is_machine) AS machine_answered,
               quantile_cont(duration_s, 0.5) FILTER (WHERE status = 'completed') AS duration_p50_s,
               quantile_cont(duration_s, 0.9) FILTER (WHERE status = 'completed') AS duration_p90_s,
               avg(duration_s) FILTER (WHERE status = 'completed') AS duration_mean_s,
               coalesce(sum(cost_usd), 0) AS cost_usd
        FROM call_facts WHERE {where} GROUP BY country_iso2
        ORDER BY calls DESC, country_iso2""", params).df()


@pytest.mark.parametrize("flt", [None, Filters(countries=("BR", "MX", "IN")),
                                 Filters(purposes=("verification",)),
                                 Filters(extra=(("status", "completed"),)), Filters(countries=("ZZ",))])
def test_voice_by_country_equals_one_plain_aggregate(seeded, flt):
    from tests.conftest import bench_periods

    for start, end in bench_periods():
        got = voice.voice_by_country(seeded, start=start, end=end, filters=flt)
        want = _voice_by_sql(seeded, start, end, flt)
        assert list(got["country_iso2"]) == list(want["country_iso2"])
        for c in want.columns[1:]:
            want_c = want[c].to_numpy("float64")
            assert got[c].to_numpy("float64") == pytest.approx(want_c, rel=1e-12, nan_ok=True), c
        total = voice.voice_summary(seeded, start=start, end=end, filters=flt).iloc[0]
        assert total.calls == want["calls"].sum() and total.completed == want["completed"].sum()
        assert total.cost_usd == pytest.approx(want["cost_usd"].sum(), rel=1e-12)


def test_seeded_calls_reach_every_outcome(seeded):
    from bench.bench_analytics import END, START

    s = voice.voice_summary(seeded, start=START, end=END).iloc[0]
    assert min(s.completed, s.busy, s.no_answer, s.failed, s.machine_answered) > 0
