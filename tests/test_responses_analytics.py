"""Opt-out and HELP rates (issue 18) on a warehouse whose answers are counted by hand."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from switchboard.analytics import responses as r
from switchboard.analytics.filters import Filters
from switchboard.ingest import warehouse
from tests.test_responses_ingest import OURS_A, T0, _load, _msg, _sid

DAY = T0.date()


def _member(i: int) -> str:
    return f"+1415555{i:04d}"


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def _campaign(records: list, sends: list, *, first: int, n: int, template: str, variant: str | None,
              at, stop: set[int] = frozenset(), help_: set[int] = frozenset(), failed: set[int] = frozenset()):
    """n sends of ``template`` to members first..first+n-1; members in ``stop`` reply STOP (and again
    'stop' a minute later), in ``help_`` reply HELP; ``failed`` sends fail (undelivered)."""
    for j in range(n):
        i = first + j
        sid = _sid(10_000 + i)
        bad = j in failed
        records.append(_msg(sid, direction="outbound-api", frm=OURS_A, to=_member(i), at=at,
                            status="undelivered" if bad else "delivered", error=30003 if bad else None))
        sends.append((f"evt_{i}", sid, template, variant, f"usr_{i}", at - timedelta(seconds=1)))
        if j in stop:
            records.append(_msg(_sid(50_000 + i), direction="inbound", frm=_member(i), to=OURS_A,
                                at=at + timedelta(minutes=5), body="STOP"))
            records.append(_msg(_sid(60_000 + i), direction="inbound", frm=_member(i), to=OURS_A,
                                at=at + timedelta(minutes=6), body="stop"))
        if j in help_:
            records.append(_msg(_sid(70_000 + i), direction="inbound", frm=_member(i), to=OURS_A,
                                at=at + timedelta(minutes=7), body="Help"))


@pytest.fixture(scope="module")
def con():
    c = warehouse.connect(":memory:")
    warehouse.create_schema(c)
    records, sends = [], []
    # control: 11 sends, 1 undelivered, 10 delivered; 3 opt out (one of them twice), 1 asks for HELP
    _campaign(records, sends, first=0, n=11, template="mkt_promo", variant="control", at=T0,
              stop={0, 1, 2}, help_={3}, failed={10})
    # urgent: 8 delivered, 4 opt out
    _campaign(records, sends, first=100, n=8, template="mkt_promo_urgent", variant="urgent", at=T0,
              stop={0, 1, 2, 3})
    # a member we never texted says STOP: a reply, but no message's rate
    records.append(_msg(_sid(99_999), direction="inbound", frm=_member(9999), to=OURS_A,
                        at=T0 + timedelta(hours=1), body="STOP"))
    _load(c, records, sends)
    yield c
    c.close()


def test_rates_per_template_by_hand(con):
    df = r.response_rates(con, start=DAY, end=DAY, by="template_id").set_index("key")
    control, urgent = df.loc["mkt_promo"], df.loc["mkt_promo_urgent"]
    assert (control["messages"], control["delivered"], control["opt_outs"], control["helps"]) == (11, 10, 3, 1)
    assert control["opt_out_rate"] == pytest.approx(0.3) and control["help_rate"] == pytest.approx(0.1)
    assert (control["opt_out_ci_low"], control["opt_out_ci_high"]) == pytest.approx(_wilson(3, 10))
    assert (urgent["delivered"], urgent["opt_outs"], urgent["opt_out_rate"]) == (8, 4, pytest.approx(0.5))
    assert (urgent["opt_out_ci_low"], urgent["opt_out_ci_high"]) == pytest.approx(_wilson(4, 8))


def test_rates_per_variant_purpose_country_and_campaign(con):
    variants = r.response_rates(con, start=DAY, end=DAY, by="variant").set_index("key")
    assert variants.loc["exp_x · urgent", "opt_outs"] == 4 and variants.loc["exp_x · control", "opt_outs"] == 3
    for by in ("purpose", "country_iso2", "campaign_id"):
        one = r.response_rates(con, start=DAY, end=DAY, by=by)
        assert len(one) == 1 and (one["delivered"].iat[0], one["opt_outs"].iat[0]) == (18, 7), by
        assert one["opt_out_rate"].iat[0] == pytest.approx(7 / 18)


def test_filters_and_period(con):
    only = r.response_rates(con, start=DAY, end=DAY, by="template_id", filters=Filters(templates=("mkt_promo",)))
    assert only["key"].tolist() == ["mkt_promo"]
    later = r.response_rates(con, start=DAY + timedelta(days=1), end=DAY + timedelta(days=2))
    assert later.empty


def test_trend_and_summary(con):
    trend = r.response_trend(con, start=DAY, end=DAY)
    assert trend[["key", "delivered", "opt_outs"]].values.tolist() == [["all", 18, 7]]
    assert trend["day"].dt.date.tolist() == [DAY]
    summary = r.response_summary(con, start=DAY, end=DAY).set_index("classification")
    assert summary.loc["opt_out", "replies"] == 15  # 7 members twice, plus the stranger once
    assert summary.loc["opt_out", "linked"] == 14 and summary.loc["opt_out", "members"] == 8
    assert summary.loc["help", "replies"] == 1


def test_opted_out_members_are_masked(con):
    total, df = r.opted_out_members(con, limit=3)
    assert total == 8 and len(df) == 3
    assert df["member"].str.contains("•").all() and not df["member"].str.contains("5555").any()
    assert set(df["evidence"]) == {"keyword"}


def test_spike_against_the_previous_period():
    c = warehouse.connect(":memory:")
    warehouse.create_schema(c)
    records, sends = [], []
    _campaign(records, sends, first=0, n=300, template="mkt_promo", variant=None, at=T0 - timedelta(days=1),
              stop=set(range(3)))
    _campaign(records, sends, first=1000, n=300, template="mkt_promo", variant=None, at=T0, stop=set(range(30)))
    _load(c, records, sends)
    spikes = r.opt_out_spikes(c, start=DAY, end=DAY, by="template_id", min_delivered=100)
    assert spikes["key"].tolist() == ["mkt_promo"]
    assert spikes["ratio"].iat[0] == pytest.approx(10.0) and spikes["p_value"].iat[0] < 0.001
    calm = r.opt_out_spikes(c, start=DAY - timedelta(days=1), end=DAY - timedelta(days=1), min_delivered=100)
    assert calm.empty
    c.close()


def test_a_warehouse_without_responses_gives_empty_frames():
    c = warehouse.connect(":memory:")
    warehouse.create_schema(c)
    c.execute("DROP VIEW IF EXISTS responses")
    assert r.response_rates(c, start=date(2026, 1, 1), end=date(2026, 1, 2)).empty
    assert r.opted_out_members(c)[0] == 0
    c.close()
