"""switchboard.analytics.delivery on a hand-built warehouse whose numbers are worked out in the comments.

Current day D0 (Indonesia, Telkomsel unless said): 10 SMS
  7 delivered (latencies 10, 20, …, 70 s, 0.05 USD each),
  2 failed with 30007 (0.05 USD each), 1 still pending ("sent", not priced yet).
  -> sent 10, delivered 7, failed 2, pending 1; delivery_rate = 7 / (7 + 2) = 7/9
     (pending is NOT in the denominator); cost 0.45 USD; cost per delivered 0.45 / 7.
Previous day D0-1 (Brazil, Vivo): 4 SMS, 2 delivered, 2 undelivered (30003), 0.02 USD each.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchboard.analytics import delivery
from switchboard.analytics.filters import Filters
from tests.test_analytics_stats import wilson_by_hand
from tests.test_analytics_warehouse import D0, Hand, empty_warehouse

PREV = D0 - timedelta(days=1)


@pytest.fixture(scope="module")
def con():
    h = Hand()
    for i in range(7):
        h.sms(latency_s=10.0 * (i + 1), template="otp" if i < 5 else "otp_short", variant="A" if i < 3 else "B",
              sender="MG1" if i < 6 else "MG2")
    for _ in range(2):
        h.sms(status="failed", error=30007, latency_s=None)
    h.sms(status="sent", price=None, latency_s=None)
    for status in ("delivered", "delivered", "undelivered", "undelivered"):
        h.sms(day=PREV, status=status, error=30003 if status == "undelivered" else None, country="BR",
              carrier="Vivo", price=0.02, purpose="password_reset", template="pr")
    _, ev = h.sms(day=D0 + timedelta(days=1), status="undelivered", error=30006, country="EG", carrier=None)
    h.call(day=D0 + timedelta(days=1), country="EG", carrier=None, fallback_of=ev, minute=2)
    h.push(day=D0 + timedelta(days=1), country="EG")
    return h.build()


def test_summary_counts_rate_ci_and_cost(con):
    row = delivery.summary(con, start=D0, end=D0).iloc[0]
    assert (row.sent, row.delivered, row.undelivered, row.failed, row.pending, row.canceled) == (10, 7, 0, 2, 1, 0)
    assert row.delivery_rate == pytest.approx(7 / 9)  # pending left out of the denominator
    assert (row.rate_ci_low, row.rate_ci_high) == pytest.approx(wilson_by_hand(7, 9))
    assert row.cost_usd == pytest.approx(0.45)
    assert row.cost_per_delivered == pytest.approx(0.45 / 7)
    assert list(delivery.summary(con, start=D0, end=D0).columns) == delivery.SUMMARY_COLUMNS


def test_summary_with_change_against_previous_period(con):
    row = delivery.summary_with_change(con, start=D0, end=D0).iloc[0]
    assert row.prev_start == PREV and row.prev_end == PREV
    assert (row.sent, row.sent_prev) == (10, 4)
    assert row.sent_change == pytest.approx((10 - 4) / 4)
    assert row.delivery_rate_prev == pytest.approx(0.5)
    assert row.delivery_rate_change == pytest.approx(7 / 9 - 0.5)  # points, not relative
    assert row.cost_usd_prev == pytest.approx(0.08)
    assert 0 < row.delivery_rate_p_value < 1
    assert list(row.index) == delivery.summary_with_change_columns()


def test_delivery_by_day_fills_the_calendar(con):
    df = delivery.delivery_by(con, start=PREV, end=D0 + timedelta(days=2), by="day")
    assert list(df["day"]) == [PREV, D0, D0 + timedelta(days=1), D0 + timedelta(days=2)]
    assert list(df["sent"]) == [4, 10, 1, 0]
    assert df["delivery_rate"].iloc[1] == pytest.approx(7 / 9)
    assert math.isnan(df["delivery_rate"].iloc[3])


def test_delivery_by_every_dimension(con):
    period = dict(start=PREV, end=D0)
    by_country = delivery.delivery_by(con, **period, by="country").set_index("country")
    assert by_country.loc["ID", "sent"] == 10 and by_country.loc["BR", "undelivered"] == 2
    assert by_country.loc["BR", "delivery_rate"] == pytest.approx(0.5)
    by_template = delivery.delivery_by(con, **period, by="template").set_index("template")
    assert by_template.loc["otp_short", "delivered"] == 2 and by_template.loc["pr", "sent"] == 4
    by_sender = delivery.delivery_by(con, **period, by="sender").set_index("sender")
    assert by_sender.loc["MG2", "sent"] == 1
    by_variant = delivery.delivery_by(con, **period, by="variant")
    assert by_variant.set_index("variant").loc["A", "delivered"] == 3
    by_purpose = delivery.delivery_by(con, **period, by="purpose").set_index("purpose")
    assert by_purpose.loc["password_reset", "sent"] == 4
    by_carrier = delivery.delivery_by(con, **period, by="carrier").set_index("carrier")
    assert by_carrier.loc["Telkomsel", "sent"] == 10 and by_carrier.loc["Vivo", "sent"] == 4
    by_region = delivery.delivery_by(con, **period, by="region").set_index("region")
    assert by_region["sent"].sum() == 14
    by_category = delivery.delivery_by(con, **period, by="error_category").set_index("error_category")
    assert by_category.loc["carrier-filtered", "failed"] == 2
    assert by_category.loc["unreachable-handset", "undelivered"] == 2
    by_week = delivery.delivery_by(con, **period, by="week")
    assert by_week["sent"].sum() == 14 and list(by_week["week"]) == [PREV - timedelta(days=6), D0]


def test_delivery_by_channel_reads_every_attempt(con):
    day = D0 + timedelta(days=1)
    df = delivery.delivery_by(con, start=day, end=day, by="channel").set_index("channel")
    assert df.loc["sms", "undelivered"] == 1 and df.loc["sms", "delivery_rate"] == 0
    assert df.loc["voice", "delivered"] == 1 and df.loc["voice", "delivery_rate"] == 1
    assert df.loc["push", "pending"] == 1 and math.isnan(df.loc["push", "delivery_rate"])


def test_unknown_dimension_lists_the_allowed_ones(con):
    with pytest.raises(ValueError, match="allowed: day, week, country"):
        delivery.delivery_by(con, start=D0, end=D0, by="country_iso2; DROP TABLE twilio_messages")


def test_filters_are_values_never_sql(con):
    only_br = delivery.summary(con, start=PREV, end=D0, filters=Filters(countries=("BR",))).iloc[0]
    assert only_br.sent == 4
    injected = Filters(countries=("ID' OR '1'='1",), extra=(("carrier", "x'; DROP TABLE twilio_messages; --"),))
    row = delivery.summary(con, start=PREV, end=D0, filters=injected).iloc[0]
    assert row.sent == 0
    assert con.execute("SELECT count(*) FROM twilio_messages").fetchone()[0] == 15
    by = delivery.delivery_by(con, start=PREV, end=D0, by="country", filters=injected)
    assert by.empty and list(by.columns) == ["country"] + delivery.SUMMARY_COLUMNS
    carrier = delivery.summary(con, start=PREV, end=D0, filters=Filters(extra=(("carrier", "Vivo"),))).iloc[0]
    assert carrier.sent == 4
    voice_only = delivery.summary(con, start=PREV, end=D0, filters=Filters(channels=("voice",))).iloc[0]
    assert voice_only.sent == 0  # message_facts is all SMS
    with pytest.raises(ValueError):
        delivery.summary(con, start=D0, end=D0, filters=Filters(extra=(("to_number", "+1"),)))


def test_latency_by_country(con):
    df = delivery.latency_by_country(con, start=PREV, end=D0)
    row = df.set_index("country_iso2").loc["ID"]
    assert row.country_name == "Indonesia" and row.delivered == 7
    assert row.latency_p50_s == pytest.approx(40)
    assert row.latency_p90_s == pytest.approx(64)  # 60 + 0.4 * 10 (linear interpolation)
    assert row.latency_mean_s == pytest.approx(40)


def test_empty_warehouse_gives_documented_columns():
    con = empty_warehouse()
    s = delivery.summary(con, start=D0, end=D0)
    assert len(s) == 1 and s.iloc[0].sent == 0 and math.isnan(s.iloc[0].delivery_rate)
    assert list(s.columns) == delivery.SUMMARY_COLUMNS
    c = delivery.summary_with_change(con, start=D0, end=D0)
    assert list(c.columns) == delivery.summary_with_change_columns()
    for by in delivery.DIMENSIONS:
        df = delivery.delivery_by(con, start=D0, end=D0, by=by)
        assert df.empty and list(df.columns) == [by] + delivery.SUMMARY_COLUMNS
    lat = delivery.latency_by_country(con, start=D0, end=D0)
    assert lat.empty and list(lat.columns) == delivery.LATENCY_COLUMNS


def test_end_before_start_is_an_error(con):
    with pytest.raises(ValueError):
        delivery.summary(con, start=D0, end=PREV)


# --------------------------------------------------------------------------- properties


STATUSES = ["delivered", "undelivered", "failed", "sent", "queued", "canceled", "read"]
message = st.tuples(st.sampled_from(STATUSES), st.sampled_from(["ID", "BR", "EG"]), st.integers(0, 3),
                    st.sampled_from([None, 0.01, 0.05]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message, min_size=0, max_size=25))
def test_breakdowns_add_up_to_the_summary(messages):
    h = Hand()
    for status, country, day, price in messages:
        final = status in ("undelivered", "failed")
        h.sms(day=D0 + timedelta(days=day), status=status, country=country, price=price,
              error=30003 if final else None, latency_s=5.0 if status in ("delivered", "read") else None)
    con = h.build()
    period = dict(start=D0, end=D0 + timedelta(days=3))
    s = delivery.summary(con, **period).iloc[0]
    assert s.sent == len(messages)
    assert s.sent == s.delivered + s.undelivered + s.failed + s.pending + s.canceled
    assert s.delivered == sum(m[0] in ("delivered", "read") for m in messages)
    for by in ("day", "country", "carrier", "template"):
        part = delivery.delivery_by(con, **period, by=by)
        for col in ("sent", "delivered", "undelivered", "failed", "pending", "canceled"):
            assert part[col].sum() == s[col], (by, col)
        assert part["cost_usd"].sum() == pytest.approx(s.cost_usd)
    if s.delivered + s.undelivered + s.failed:
        assert s.rate_ci_low <= s.delivery_rate <= s.rate_ci_high
