"""switchboard.analytics.countries on hand-built warehouses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from switchboard.analytics import countries
from switchboard.analytics.filters import Filters
from tests.test_analytics_warehouse import D0, Hand, at, empty_warehouse


@pytest.fixture(scope="module")
def con():
    """Indonesia: 3 SMS (2 delivered, 1 undelivered; 0.05 each, users u1, u1, u2) + 1 answered call (0.10).
    Brazil: 1 delivered SMS (0.02)."""
    h = Hand()
    h.sms(user="u1")
    h.sms(user="u1")
    h.sms(status="undelivered", error=30003, user="u2")
    h.call(user="u3")
    h.sms(country="BR", carrier="Vivo", price=0.02, user="u9")
    return h.build()


def test_country_overview(con):
    df = countries.country_overview(con, start=D0, end=D0)
    assert list(df.columns) == countries.OVERVIEW_COLUMNS
    assert list(df["country_iso2"]) == ["ID", "BR"]  # by volume
    idn = df.iloc[0]
    assert (idn.country_iso3, idn.country_name) == ("IDN", "Indonesia")
    assert (idn.sms_sent, idn.sms_delivered, idn.sms_failed, idn.voice_calls, idn.voice_answered) == (3, 2, 1, 1, 1)
    assert idn.sms_delivery_rate == pytest.approx(2 / 3) and idn.answer_rate == 1.0
    assert idn.sms_share == pytest.approx(0.75) and idn.voice_share == pytest.approx(0.25)
    assert idn.cost_usd == pytest.approx(0.25)
    assert idn.cost_per_sent == pytest.approx(0.25 / 4)
    assert idn.cost_per_delivered == pytest.approx(0.25 / 3)
    assert idn.sms_cost_per_delivered == pytest.approx(0.15 / 2)
    bra = df.iloc[1]
    assert bra.voice_calls == 0 and bra.sms_share == 1.0 and bra.sms_cost_per_sent == pytest.approx(0.02)


def test_country_overview_filters(con):
    df = countries.country_overview(con, start=D0, end=D0, filters=Filters(countries=("BR",)))
    assert list(df["country_iso2"]) == ["BR"]
    sms_only = countries.country_overview(con, start=D0, end=D0, filters=Filters(channels=("sms",)))
    assert sms_only.set_index("country_iso2").loc["ID", "voice_calls"] == 0


def test_sms_users_by_country(con):
    df = countries.sms_users_by_country(con, start=D0, end=D0)
    assert list(df.columns) == countries.USERS_COLUMNS
    idn = df.set_index("country_iso2").loc["ID"]
    assert idn.sms_users == 2 and idn.sms_sent == 3 and idn.sms_per_user == pytest.approx(1.5)


def _attempts(h: Hand, *, channel: str, country: str, n: int, converted: int, day=D0) -> None:
    for i in range(n):
        user = f"{country}-{channel}-{i}"
        if channel == "sms":
            h.sms(day=day, country=country, carrier=None, user=user, price=0.05)
        elif channel == "voice":
            h.call(day=day, country=country, carrier=None, user=user, price=0.10)
        else:
            h.push(day=day, country=country, user=user)
        if i < converted:
            h.convert(user, at(day, 12, 5))


@pytest.fixture(scope="module")
def rec_con():
    h = Hand()
    # Egypt: voice converts 70/100, SMS 40/100 -> voice, significantly better
    _attempts(h, channel="sms", country="EG", n=100, converted=40)
    _attempts(h, channel="voice", country="EG", n=100, converted=70)
    # Brazil: push 50/100, SMS 52/100 -> not significantly different; push costs nothing -> push
    _attempts(h, channel="sms", country="BR", n=100, converted=52)
    _attempts(h, channel="push", country="BR", n=100, converted=50)
    # France: SMS 60/100, voice 20/100 -> SMS
    _attempts(h, channel="sms", country="FR", n=100, converted=60)
    _attempts(h, channel="voice", country="FR", n=100, converted=20)
    # Kenya: 5 attempts only -> not enough data, keep SMS
    _attempts(h, channel="sms", country="KE", n=5, converted=1)
    return h.build()


def test_channel_recommendation(rec_con):
    df = countries.channel_recommendation(rec_con, start=D0, end=D0).set_index("country_iso2")
    assert list(df.reset_index().columns) == countries.RECOMMENDATION_COLUMNS
    eg = df.loc["EG"]
    assert eg.recommended == "voice" and eg.metric == "conversion" and eg.enough_data
    assert eg.voice_conversion_rate == pytest.approx(0.7) and eg.sms_conversion_rate == pytest.approx(0.4)
    assert eg.voice_cost_per_conversion == pytest.approx(10 / 70)
    assert eg.p_value_vs_sms < 0.001
    assert eg.reason.startswith("In Egypt, voice converts 70% of 100 attempts against 40% for SMS")
    br = df.loc["BR"]
    assert br.recommended == "push" and "not significantly worse than SMS and cheaper" in br.reason
    fr = df.loc["FR"]
    assert fr.recommended == "sms" and "significantly better" in fr.reason
    ke = df.loc["KE"]
    assert ke.recommended == "sms" and not ke.enough_data and ke.reason.startswith("Not enough attempts in Kenya")


def test_fallback_attempts_get_no_conversion_credit():
    h = Hand()
    for i in range(40):
        user = f"u{i}"
        _, ev = h.sms(status="undelivered", error=30006, country="EG", carrier=None, user=user)
        h.call(country="EG", carrier=None, user=user, fallback_of=ev, minute=1)
        h.convert(user, at(D0, 12, 3))
    con = h.build()
    row = countries.channel_recommendation(con, start=D0, end=D0, min_attempts=10).iloc[0]
    assert row.sms_conversion_rate == 0  # the call, not the SMS, reached these members
    assert row.voice_conversion_rate == 1 and row.recommended == "voice"
    assert "measured mostly on members SMS did not reach" in row.reason


def test_empty_warehouse():
    con = empty_warehouse()
    assert list(countries.country_overview(con, start=D0, end=D0).columns) == countries.OVERVIEW_COLUMNS
    assert list(countries.sms_users_by_country(con, start=D0, end=D0).columns) == countries.USERS_COLUMNS
    rec = countries.channel_recommendation(con, start=D0, end=D0 + timedelta(days=1))
    assert rec.empty and list(rec.columns) == countries.RECOMMENDATION_COLUMNS
