"""switchboard.analytics.fallback: SMS-first chains and their voice fallbacks, by hand.

Indonesia, 5 SMS chains:
  2 delivered (no fallback);
  1 undelivered -> voice call answered 60 s after the SMS (rescued, member u3);
  1 undelivered -> voice call busy;
  1 undelivered, no fallback.
  -> sms_attempts 5, sms_delivered 2, fell_back 2 (fallback_rate 2/5), fallback_delivered 1
     (success rate 1/2), rescued 1, members_rescued 1, reached_rate 3/5, rescue time 60 s.
A direct (non-fallback) call is not a chain and changes nothing.
"""

from __future__ import annotations

import pytest

from switchboard.analytics import fallback
from switchboard.analytics.filters import Filters
from tests.test_analytics_warehouse import D0, Hand, empty_warehouse


@pytest.fixture(scope="module")
def con():
    h = Hand()
    h.sms(user="u1")
    h.sms(user="u2")
    _, ev = h.sms(status="undelivered", error=30003, user="u3")
    h.call(user="u3", fallback_of=ev, minute=1)
    _, ev = h.sms(status="undelivered", error=30003, user="u4")
    h.call(user="u4", fallback_of=ev, minute=1, status="busy", duration=0, answered_by=None)
    h.sms(status="undelivered", error=30003, user="u5")
    h.call(user="u6")
    h.sms(country="BR", carrier="Vivo", user="b1")
    return h.build()


def test_fallback_by_country(con):
    df = fallback.fallback_by_country(con, start=D0, end=D0)
    assert list(df.columns) == fallback.COUNTRY_COLUMNS
    r = df.set_index("country_iso2").loc["ID"]
    assert r.country_name == "Indonesia"
    assert (r.sms_attempts, r.sms_delivered, r.fell_back, r.fell_back_to_voice) == (5, 2, 2, 2)
    assert r.fallback_rate == pytest.approx(2 / 5)
    assert (r.fallback_delivered, r.rescued, r.members_rescued) == (1, 1, 1)
    assert r.fallback_success_rate == pytest.approx(0.5)
    assert r.reached_rate == pytest.approx(3 / 5)
    assert r.rescue_seconds_p50 == pytest.approx(60) and r.rescue_seconds_p90 == pytest.approx(60)
    br = df.set_index("country_iso2").loc["BR"]
    assert br.fell_back == 0 and br.fallback_rate == 0


def test_fallback_summary_and_filters(con):
    s = fallback.fallback_summary(con, start=D0, end=D0).iloc[0]
    assert s.sms_attempts == 6 and s.rescued == 1 and s.fallback_rate == pytest.approx(2 / 6)
    only_br = fallback.fallback_by_country(con, start=D0, end=D0, filters=Filters(countries=("BR",)))
    assert list(only_br["country_iso2"]) == ["BR"]


def test_empty_warehouse():
    con = empty_warehouse()
    assert list(fallback.fallback_by_country(con, start=D0, end=D0).columns) == fallback.COUNTRY_COLUMNS
    s = fallback.fallback_summary(con, start=D0, end=D0)
    assert list(s.columns) == fallback.METRIC_COLUMNS and s.iloc[0].sms_attempts == 0
