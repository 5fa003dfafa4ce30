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


# --------------------------------------------------------------------------- vectorised tests = scalar tests

def _scalar_recommendation(con, *, start, end, filters=None, min_attempts=30, alpha=0.05):
    """channel_recommendation as it was before its tests were vectorised: pandas groups per country and
    one scalar two_proportion_z call per pair of channels (the decision rule, _recommend, is shared)."""
    import itertools

    import pandas as pd

    from switchboard.analytics import _sql
    from switchboard.analytics.stats_basic import safe_div, two_proportion_z

    df = _sql.query(con, "channel_evidence", start, end, filters)
    df = df[df["channel"].isin(countries.CHANNELS)].copy()
    if df.empty:
        return _sql.empty(countries.RECOMMENDATION_COLUMNS)
    df = _sql.add_country_names(con, df)
    df["delivery_rate"] = safe_div(df["delivered"], df["with_outcome"])
    df["conversion_rate"] = safe_div(df["converted"], df["attempts"])
    df["cost_per_attempt"] = safe_div(df["cost_usd"], df["attempts"])
    df["cost_per_conversion"] = safe_div(df["cost_usd"], df["converted"])
    rows = []
    for country, part in df.groupby("country_iso2", dropna=False, sort=False):
        by_ch = part.set_index("channel").to_dict("index")
        num, den = ("converted", "attempts") if part["converted"].sum() > 0 else ("delivered", "with_outcome")
        p_values = {(a, b): float(two_proportion_z(by_ch[a][num], by_ch[a][den], by_ch[b][num],
                                                   by_ch[b][den]).p_value)
                    for a, b in itertools.permutations(by_ch, 2)}
        rows.append(countries._recommend(country, part["country_name"].iloc[0], by_ch, min_attempts, alpha,
                                         p_values))
    out = pd.DataFrame(rows)
    volume = df.groupby("country_iso2", dropna=False)["attempts"].sum()
    out["_volume"] = out["country_iso2"].map(volume).fillna(0)
    out = out.sort_values(["_volume", "country_iso2"], ascending=[False, True])
    return out[countries.RECOMMENDATION_COLUMNS].reset_index(drop=True)


@pytest.mark.parametrize("flt", [None, Filters(countries=("BR", "MX", "IN")),
                                 Filters(purposes=("verification",)), Filters(channels=("sms", "push")),
                                 Filters(extra=(("region", "Asia"),))])
def test_channel_recommendation_equals_the_scalar_tests(seeded, flt):
    """Vectorised pairwise p-values and one pass over the evidence give the frame the per-country,
    per-pair scalar path gives: same recommendations, reasons, p-values and evidence columns."""
    import pandas as pd

    from tests.conftest import bench_periods

    compared = 0
    for start, end in bench_periods():
        for min_attempts, alpha in ((30, 0.05), (5, 0.3), (200, 0.01)):
            kw = {"start": start, "end": end, "filters": flt, "min_attempts": min_attempts, "alpha": alpha}
            got, want = countries.channel_recommendation(seeded, **kw), _scalar_recommendation(seeded, **kw)
            pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=0)
            compared += int(got["enough_data"].sum()) if len(got) else 0
    assert compared > 0  # some countries had channels to test


def test_channel_recommendation_seeded_reaches_every_branch(seeded):
    """The seeded warehouse reaches the branches the equality test above compares."""
    from bench.bench_analytics import END, START

    df = countries.channel_recommendation(seeded, start=START, end=END, min_attempts=5, alpha=0.3)
    assert df["enough_data"].any() and df["p_value_vs_sms"].notna().any()
    assert set(df["recommended"]) - {"sms"}  # some country recommends another channel


def test_reason_names_the_country_code_when_the_name_is_unknown():
    """A recipient country missing from the countries dimension: the reason says its code, never 'nan'."""
    h = Hand()
    _attempts(h, channel="sms", country="ZZ", n=40, converted=10)
    _attempts(h, channel="voice", country="ZZ", n=40, converted=30)
    row = countries.channel_recommendation(h.build(), start=D0, end=D0).iloc[0]
    assert row.country_iso2 == "ZZ" and row.recommended == "voice"
    assert row.reason.startswith("In ZZ, voice converts 75% of 40 attempts") and "nan" not in row.reason
