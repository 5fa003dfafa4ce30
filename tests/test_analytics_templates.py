"""switchboard.analytics.templates: the segment_info re-export and template_stats by hand.

otp/A: 3 GSM-7 single-segment SMS to Indonesia (0.05 each), 2 delivered, 1 undelivered; 1 converted.
otp/B: 2 UCS-2 two-segment SMS to Indonesia (0.10 each), both delivered; 2 converted.
promo: 1 SMS to Brazil (GSM-7, 1 segment, 0.02) and 1 to Indonesia (UCS-2, 2 segments, 0.10) -> "mixed".
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from switchboard.analytics import templates
from switchboard.analytics.filters import Filters
from switchboard.core import segments as templates_segments
from tests.test_analytics_warehouse import D0, Hand, at, empty_warehouse


def test_segment_info_is_re_exported():
    assert templates.segment_info is templates_segments.segment_info
    assert templates.SegmentInfo is templates_segments.SegmentInfo
    info = templates.segment_info("Your code is 123456")
    assert info.encoding == "GSM-7" and info.segments == 1


@pytest.fixture(scope="module")
def con():
    h = Hand()
    h.sms(template="otp", variant="A", user="a1")
    h.sms(template="otp", variant="A", user="a2")
    h.sms(template="otp", variant="A", status="undelivered", error=30003, user="a3")
    h.convert("a1", at(D0, 12, 2))
    for u in ("b1", "b2"):
        h.sms(template="otp", variant="B", encoding="UCS-2", segments=2, price=0.10, user=u)
        h.convert(u, at(D0, 12, 2))
    h.sms(template="promo", variant=None, country="BR", carrier="Vivo", price=0.02, user="p1")
    h.sms(template="promo", variant=None, encoding="UCS-2", segments=2, price=0.10, user="p2")
    return h.build()


def test_template_stats(con):
    df = templates.template_stats(con, start=D0, end=D0)
    assert list(df.columns) == templates.TEMPLATE_COLUMNS
    by = df.set_index(["template_id", "variant"], drop=False)
    a = df[(df.template_id == "otp") & (df.variant == "A")].iloc[0]
    assert (a.messages, a.encoding, a.ucs2_share, a.avg_segments) == (3, "GSM-7", 0.0, 1.0)
    assert a.delivery_rate == pytest.approx(2 / 3) and a.conversion_rate == pytest.approx(1 / 3)
    assert a.cost_per_delivered == pytest.approx(0.15 / 2) and a.cost_per_message == pytest.approx(0.05)
    b = df[(df.template_id == "otp") & (df.variant == "B")].iloc[0]
    assert (b.encoding, b.avg_segments, b.conversion_rate) == ("UCS-2", 2.0, 1.0)
    assert b.cost_per_delivered == pytest.approx(0.10)
    promo = df[df.template_id == "promo"].iloc[0]
    assert promo.encoding == "mixed" and promo.ucs2_share == pytest.approx(0.5)
    assert len(by) == 3


def test_template_stats_by_country(con):
    df = templates.template_stats(con, start=D0, end=D0, by_country=True)
    assert list(df.columns[:3]) == ["template_id", "variant", "country_iso2"]
    promo = df[df.template_id == "promo"].set_index("country_iso2")
    assert promo.loc["BR", "cost_per_delivered"] == pytest.approx(0.02)
    assert promo.loc["ID", "cost_per_delivered"] == pytest.approx(0.10)
    assert promo.loc["ID", "encoding"] == "UCS-2"


def test_empty_warehouse():
    con = empty_warehouse()
    assert list(templates.template_stats(con, start=D0, end=D0).columns) == templates.TEMPLATE_COLUMNS
    df = templates.template_stats(con, start=D0, end=D0, by_country=True)
    assert df.empty and "country_iso2" in df.columns


# segment_prices, by hand (day D0 unless said):
#   ID: otp 1 seg $0.05, otp 1 seg $0.05, promo UCS-2 2 seg $0.08, promo 3 seg unpriced -> 4 messages,
#       4 priced segments, $0.18 -> $0.045 per segment; D0+1: otp 1 seg $0.09 (outside a D0-only period)
#   BR: otp 3 seg $0.21 -> $0.07 per segment;  MX: one unpriced message -> no row
@pytest.fixture(scope="module")
def price_con():
    h = Hand()
    h.sms(template="otp", price=0.05)
    h.sms(template="otp", price=0.05)
    h.sms(template="promo", encoding="UCS-2", segments=2, price=0.08)
    h.sms(template="promo", segments=3, price=None)
    h.sms(template="otp", price=0.09, day=D0 + timedelta(days=1))
    h.sms(template="otp", country="BR", carrier="Vivo", segments=3, price=0.21)
    h.sms(template="otp", country="MX", carrier=None, price=None)
    return h.build()


def test_segment_prices_by_hand(price_con):
    df = templates.segment_prices(price_con, start=D0, end=D0)
    assert list(df.columns) == templates.SEGMENT_PRICE_COLUMNS
    assert df["country_iso2"].tolist() == ["ID", "BR"]  # most messages first; MX has no price
    assert df["country_name"].tolist() == ["Indonesia", "Brazil"]
    idn, bra = df.iloc[0], df.iloc[1]
    assert (idn.messages, idn.priced_segments) == (4, 4)
    assert idn.price_per_segment_usd == pytest.approx(0.18 / 4)
    assert (bra.messages, bra.priced_segments) == (1, 3)
    assert bra.price_per_segment_usd == pytest.approx(0.07)


def test_segment_prices_period_and_filters(price_con):
    two_days = templates.segment_prices(price_con, start=D0, end=D0 + timedelta(days=1)).set_index("country_iso2")
    assert two_days.loc["ID", "messages"] == 5
    assert two_days.loc["ID", "price_per_segment_usd"] == pytest.approx(0.27 / 5)
    otp = templates.segment_prices(price_con, start=D0, end=D0, filters=Filters(templates=("otp",)))
    assert otp.set_index("country_iso2")["price_per_segment_usd"].to_dict() == pytest.approx({"ID": 0.05, "BR": 0.07})
    brazil = templates.segment_prices(price_con, start=D0, end=D0, filters=Filters(countries=("BR",)))
    assert brazil["country_iso2"].tolist() == ["BR"]
    assert templates.segment_prices(price_con, start=D0, end=D0, filters=Filters(channels=("voice",))).empty
    assert templates.segment_prices(price_con, start=D0, end=D0, filters=Filters(channels=("sms",))).shape[0] == 2


def test_segment_prices_empty_warehouse():
    df = templates.segment_prices(empty_warehouse(), start=D0, end=D0)
    assert df.empty and list(df.columns) == templates.SEGMENT_PRICE_COLUMNS
