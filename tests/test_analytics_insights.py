"""what_changed: hand-built incidents with known numbers, and the sandbox world's ground truth."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from switchboard.analytics import insights
from switchboard.analytics.filters import Filters
from switchboard.ingest import warehouse
from tests.test_analytics_warehouse import D0, Hand, create_schema, empty_warehouse, refresh_facts


def load_world(world, con=None):
    """Raw tables straight from a sandbox World (its own country and carrier, no phone lookups)."""
    con = con or warehouse.connect(":memory:")
    create_schema(con)
    accounts = pd.DataFrame({"account_idx": range(len(world.accounts)),
                             "account_sid": [a["sid"] for a in world.accounts]})
    m = world.messages
    msgs = pd.DataFrame({
        "sid": m["sid"].astype(str), "account_idx": m["account_idx"], "ms": m["messaging_service_sid"].astype(object),
        "frm": m["from"].astype(str), "to": m["to"].astype(str), "status": m["status"].astype(str),
        "error_code": m["error_code"], "num_segments": m["num_segments"], "encoding": m["encoding"].astype(str),
        "price": m["price"], "created": m["date_created"], "sent": m["date_sent"], "final": m["final_at"],
        "country": m["country"].astype(str), "carrier": m["carrier"].astype(object),
        # the members' replies stay inbound, as the API lists them: the facts count outbound SMS only
        "direction": (m["direction"].astype(str) if "direction" in m.columns else "outbound-api")})
    con.register("_acc", accounts)
    con.register("_m", msgs)
    con.execute("""
        INSERT INTO twilio_messages (sid, account_sid, messaging_service_sid, direction, from_number, to_number,
            status, error_code, num_segments, body_encoding, price, price_unit, price_usd, date_created, date_sent,
            date_updated, to_country, to_carrier, source)
        SELECT sid, a.account_sid, ms, direction, frm, "to", status, nullif(error_code, 0), num_segments,
               encoding, -price, 'USD', price, to_timestamp(created), to_timestamp(sent), to_timestamp(final),
               country, carrier, 'api'
        FROM _m JOIN _acc a USING (account_idx)""")
    c = world.calls
    calls = pd.DataFrame({
        "sid": c["sid"].astype(str), "account_idx": c["account_idx"], "status": c["status"].astype(str),
        "answered_by": c["answered_by"].astype(object), "duration": c["duration"], "price": c["price"],
        "created": c["date_created"], "start": c["start_time"], "end": c["end_time"],
        "to": c["to"].astype(str), "frm": c["from"].astype(str), "country": c["country"].astype(str)})
    con.register("_c", calls)
    con.execute("""
        INSERT INTO twilio_calls (sid, account_sid, direction, from_number, to_number, status, answered_by,
            duration_s, price, price_unit, price_usd, start_time, end_time, date_created, to_country, source)
        SELECT sid, a.account_sid, 'outbound-api', frm, "to", status, answered_by, duration, -price, 'USD', price,
               to_timestamp(start), to_timestamp("end"), to_timestamp(created), country, 'api'
        FROM _c JOIN _acc a USING (account_idx)""")
    log = world.send_log.drop(columns=[col for col in world.send_log.columns if col.startswith("_")])
    con.register("_s", log)
    con.execute("""
        INSERT INTO send_log (event_id, sent_at, channel, purpose, template_id, experiment_id, variant, campaign_id,
            user_id, country, locale, provider_sid, fallback_of)
        SELECT event_id, CAST(sent_at AS TIMESTAMPTZ), channel, purpose, template_id, experiment_id, variant,
               campaign_id, user_id, country, locale, provider_sid, fallback_of FROM _s""")
    conv = world.conversions.drop(columns=[col for col in world.conversions.columns if col.startswith("_")])
    con.register("_v", conv)
    con.execute("""INSERT INTO conversions (event_id, user_id, conversion_type, occurred_at)
                   SELECT event_id, user_id, conversion_type, CAST(occurred_at AS TIMESTAMPTZ) FROM _v""")
    for name in ("_acc", "_m", "_c", "_s", "_v"):
        con.unregister(name)
    refresh_facts(con)
    return con


# --------------------------------------------------------------------------- hand-built incidents

DAYS = 35  # 28 baseline days + 7 recent days
END = D0 + timedelta(days=DAYS - 1)
ONSET = D0 + timedelta(days=28)  # first recent day: 30 Nov


def _world(h: Hand, *, carrier_incident=False, landline=False, cost_rise=False, stable_noise=False) -> Hand:
    for k in range(DAYS):
        day = D0 + timedelta(days=k)
        recent = k >= 28
        for carrier in ("Telkomsel", "Indosat Ooredoo Hutchison"):
            for i in range(20):
                failing = carrier_incident and recent and carrier != "Telkomsel" and i < 8
                noisy = stable_noise and i == 0
                if failing:
                    h.sms(day=day, carrier=carrier, status="undelivered", error=30007, minute=i)
                elif noisy:
                    h.sms(day=day, carrier=carrier, status="undelivered", error=30003, minute=i)
                else:
                    h.sms(day=day, carrier=carrier, minute=i)
        for i in range(20):
            price, segments = (0.10, 2) if cost_rise and recent else (0.05, 1)
            h.sms(day=day, country="BR", carrier="Vivo", template="promo", price=price, segments=segments, minute=i,
                  status="undelivered" if stable_noise and i == 0 else "delivered",
                  error=30003 if stable_noise and i == 0 else None)
        if landline:
            for i in range(20):
                if i < 5:
                    h.sms(day=day, country="EG", carrier=None, status="undelivered", error=30006, minute=i)
                else:
                    h.sms(day=day, country="EG", carrier=None, minute=i)
    return h


def test_carrier_incident_is_found_once_with_numbers_by_hand():
    con = _world(Hand(), carrier_incident=True).build()
    df = insights.what_changed(con, end=END)
    assert list(df.columns) == insights.FINDING_COLUMNS
    assert len(df) == 1, df["sentence"].tolist()  # not also as country-level, template-level or delivery drop
    r = df.iloc[0]
    assert (r.kind, r.country_iso2, r.carrier, r.template_id, r.error_code) == (
        "error_rise", "ID", "Indosat Ooredoo Hutchison", None, 30007)
    # recent: 7 days x 20 = 140 messages, 56 failed 30007; baseline 560 messages, none
    assert (r.baseline_value, r.recent_value) == pytest.approx((0.0, 0.4))
    assert r.lost_deliveries == pytest.approx(56)
    assert (r.delivery_rate_baseline, r.delivery_rate_recent) == pytest.approx((1.0, 0.6))
    assert (r.messages_baseline, r.messages_recent) == (560, 140)
    assert r.onset == ONSET and r.q_value <= 0.01 and r["rank"] == 1
    assert r.sentence == ("Delivery in Indonesia on Indosat Ooredoo Hutchison fell from 100% to 60% since 30 Nov: "
                          "error 30007 (Message filtered), about 56 lost deliveries.")
    assert "carrier rules" in r.what_to_do


def test_stable_world_reports_nothing():
    con = _world(Hand(), stable_noise=True).build()
    df = insights.what_changed(con, end=END)
    assert df.empty and list(df.columns) == insights.FINDING_COLUMNS


def test_persistent_landline_country_cost_rise_and_ranking():
    con = _world(Hand(), carrier_incident=True, landline=True, cost_rise=True).build()
    df = insights.what_changed(con, end=END)
    assert list(df["kind"]) == ["error_rise", "persistent_error", "cost_rise"], df["sentence"].tolist()
    eg = df.iloc[1]
    assert (eg.country_iso2, eg.error_code, eg.carrier) == ("EG", 30006, None)
    assert eg.recent_value == pytest.approx(0.25) and eg.baseline_value == pytest.approx(0.0)
    assert eg.lost_deliveries == pytest.approx(35) and eg.onset is None
    assert eg.sentence == ("In Egypt, error 30006 (Landline or unreachable carrier) fails 25% of SMS against 0% in "
                           "other countries, a standing problem rather than a change: about 35 lost deliveries in "
                           "the last 7 days.")
    cost = df.iloc[2]
    assert (cost.country_iso2, cost.carrier, cost.template_id) == ("BR", None, None)
    assert (cost.baseline_value, cost.recent_value) == pytest.approx((0.05, 0.10))
    assert cost.cost_added_usd == pytest.approx(7.0) and cost.onset == ONSET
    assert cost.sentence == ("Cost per SMS in Brazil rose from $0.0500 to $0.1000 since 30 Nov, about $7 more over "
                             "the last 7 days.")
    assert list(df["rank"]) == [1, 2, 3]


def test_filters_and_window_arguments():
    con = _world(Hand(), carrier_incident=True).build()
    assert insights.what_changed(con, end=END, filters=Filters(countries=("BR",))).empty
    injected = Filters(extra=(("carrier", "' OR 1=1 --"),))
    assert insights.what_changed(con, end=END, filters=injected).empty
    # a recent window before the incident sees nothing
    assert insights.what_changed(con, end=ONSET - timedelta(days=1)).empty
    with pytest.raises(ValueError):
        insights.what_changed(con, end=END, recent_days=0)


def test_a_delivery_drop_spread_over_many_codes_has_no_advice_and_none_not_na():
    """Only a delivery drop (eight codes, one failure each a day: no code alone is large): its error fields are
    None (an all-NA column once broke the alert sentence: 'boolean value of NA is ambiguous')."""
    from datetime import UTC, datetime

    from switchboard.alerts import evaluate, rules

    h = Hand()
    codes = (30003, 30005, 30006, 30008, 30007, 30004, 30034, 21610)
    for k in range(DAYS):
        for i in range(20):
            code = codes[i] if k >= 28 and i < len(codes) else None
            h.sms(day=D0 + timedelta(days=k), country="BR", carrier="Vivo", minute=i,
                  status="undelivered" if code else "delivered", error=code)
    con = h.build()
    df = insights.what_changed(con, end=END)
    assert list(df["kind"]) == ["delivery_drop"], df["sentence"].tolist()
    assert df.loc[0, "what_to_do"] is None and df.loc[0, "error_name"] is None
    cfg = rules.parse({"defaults": {"recent_hours": 24 * 7}})
    ev = evaluate.evaluate(con, cfg, datetime(END.year, END.month, END.day, 23, 59, tzinfo=UTC))
    assert [f.kind for f in ev.findings] == ["delivery_drop"] and "the mix of codes" in ev.findings[0].sentence


def test_empty_warehouse():
    df = insights.what_changed(empty_warehouse(), end=END)
    assert df.empty and list(df.columns) == insights.FINDING_COLUMNS


# --------------------------------------------------------------------------- sandbox ground truth

# The sandbox also fails most US SMS from unregistered long codes with 30034 on purpose
# (sandbox/world.py, "US sends from an unregistered long code fail with 30034"): a real,
# deliberate, standing problem of that world, not an invention, though not listed among
# ground_truth["incidents"].
DELIBERATE = {("US", 30034)}


@pytest.fixture(scope="module")
def sandbox_world():
    world_mod = pytest.importorskip("switchboard.sandbox.world")
    world = world_mod.generate(world_mod.Scenario(messages=150_000, calls=15_000))
    return world, load_world(world)


def _check_against_truth(df: pd.DataFrame, truth: dict) -> None:
    expected = {(i["country"], i["error_code"]): i for i in truth["incidents"]}
    found = {}
    for r in df.itertuples():
        key = (r.country_iso2, r.error_code)
        assert key in expected or key in DELIBERATE, f"invented: {r.sentence}"
        found[key] = r
    for key, inc in expected.items():
        assert key in found, f"missed incident {inc['kind']} {key}; got {df['sentence'].tolist()}"
        if inc.get("carrier"):
            assert found[key].carrier == inc["carrier"], found[key].sentence
    assert len(df) == len(found)  # each incident reported once


def test_sandbox_incidents_found_and_nothing_invented(sandbox_world):
    world, con = sandbox_world
    last_day = (world.end - timedelta(days=1)).date()
    df = insights.what_changed(con, end=last_day)
    _check_against_truth(df, world.ground_truth)
    carrier = next(i for i in world.ground_truth["incidents"] if i["kind"] == "carrier_filtering")
    row = df[(df.country_iso2 == carrier["country"]) & (df.error_code == carrier["error_code"])].iloc[0]
    assert row.kind == "error_rise"
    start = date.fromisoformat(carrier["start_date"])
    assert start <= row.onset <= start + timedelta(days=carrier["ramp_days"])  # dated within the ramp
    assert row.recent_value == pytest.approx(carrier["observed_error_rate_after_ramp"], abs=0.06)


def test_sandbox_incident_caught_in_its_first_week(sandbox_world):
    world, con = sandbox_world
    carrier = next(i for i in world.ground_truth["incidents"] if i["kind"] == "carrier_filtering")
    end = date.fromisoformat(carrier["start_date"]) + timedelta(days=6)
    df = insights.what_changed(con, end=end)
    _check_against_truth(df, world.ground_truth)
