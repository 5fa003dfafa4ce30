"""latency_by_country reads its quantiles off per-value counts (analytics.stats_basic.quantiles_from_counts):
they must equal DuckDB's quantile_cont over the raw latencies, with whole-second and with
fractional latencies, ties, one-message countries, and filters. (Equal up to the last bit of a
double: DuckDB interpolates with a fused multiply-add.)"""

from __future__ import annotations

import random
from datetime import timedelta

import pandas as pd
import pytest

from switchboard.analytics import _sql, delivery
from switchboard.analytics.filters import Filters
from tests.test_analytics_warehouse import D0, Hand

REFERENCE = """
SELECT country_iso2, count(*) AS delivered, quantile_cont(delivery_latency_s, 0.5) AS latency_p50_s,
       quantile_cont(delivery_latency_s, 0.9) AS latency_p90_s, avg(delivery_latency_s) AS latency_mean_s
FROM message_facts WHERE {where} AND is_delivered AND delivery_latency_s IS NOT NULL
GROUP BY country_iso2 ORDER BY delivered DESC, country_iso2
"""


def _check(con, start, end, filters=None):
    got = delivery.latency_by_country(con, start=start, end=end, filters=filters)
    where, params = _sql.where_for("message_facts", start, end, filters)
    ref = con.execute(REFERENCE.format(where=where), params).df()
    assert list(got["country_iso2"]) == list(ref["country_iso2"])
    assert list(got["delivered"]) == list(ref["delivered"])
    for c in ("latency_p50_s", "latency_p90_s", "latency_mean_s"):
        pd.testing.assert_series_equal(got[c].reset_index(drop=True), ref[c].astype("float64").reset_index(drop=True),
                                       check_exact=False, rtol=1e-13, atol=0, check_names=False)
    return got


@pytest.fixture(scope="module")
def hand():
    rng = random.Random(5)
    h = Hand()
    for i in range(300):
        country = rng.choice(["ID", "ID", "BR", "MX"])
        latency = rng.choice([rng.uniform(0.2, 400.0), float(rng.randint(1, 30)), 7.0])
        h.sms(country=country, latency_s=latency, day=D0 - timedelta(days=i % 3), hour=i % 24,
              template=rng.choice(["otp", "otp_short"]))
    h.sms(country="FR", latency_s=3.25)  # a country with one delivered message
    h.sms(country="FR", status="failed", error=30007, latency_s=None)
    return h.build()


@pytest.mark.parametrize("flt", [None, Filters(countries=("BR", "FR")), Filters(templates=("otp_short",))])
def test_fractional_latencies(hand, flt):
    got = _check(hand, D0 - timedelta(days=2), D0, flt)
    assert len(got) > 0
    _check(hand, D0, D0, flt)


def test_whole_second_latencies_on_a_seeded_warehouse(seeded):
    from bench.bench_analytics import END, START

    for flt in (None, Filters(countries=("BR", "MX")), Filters(purposes=("verification",))):
        for start, end in ((START, END), (END - timedelta(days=1), END)):
            assert len(_check(seeded, start, end, flt)) > 0
