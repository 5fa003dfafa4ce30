"""Tests for analytics.experiments (the data half of A/B experiments).

Hand-built warehouses with known counts per variant go through the real schema,
facts and views (ingest.warehouse), so the SQL is checked against numbers counted
by hand here, and the analysis against experiments_stats called directly on those
counts. A seeded sandbox world checks the whole path finds the known true effects.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from switchboard.analytics import experiments as ex
from switchboard.analytics.experiments_stats import (
    Arm,
    MeanStats,
    RatioStats,
    compare_variants,
    mean_test,
    proportion_test,
    ratio_test,
    srm_check,
)
from switchboard.analytics.filters import Filters
from switchboard.ingest import warehouse

D0 = date(2026, 10, 5)


@pytest.fixture(autouse=True)
def _no_plan_files(tmp_path_factory, monkeypatch):
    """Point the settings at an empty data folder: the analysis must not read any setting or file, so
    nothing here should depend on it (plans are passed explicitly where a test needs one)."""
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path_factory.mktemp("data")))


def at(day: int, minute: int = 0) -> datetime:
    return datetime(D0.year, D0.month, D0.day, 9, 0, tzinfo=UTC) + timedelta(days=day, minutes=minute)


@dataclass
class Exposure:
    """One experiment SMS to a member, with what happened after (the test's hand spec)."""

    user: str
    variant: str
    day: int = 0
    minute: int = 0
    delivered: bool = True
    cost: float = 0.05
    convert_after: float | None = None  # minutes from this attempt to the member's conversion
    fallback_cost: float | None = None  # a voice fallback call with this cost
    country: str = "BR"
    experiment: str = "exp1"


@dataclass
class Builder:
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    sends: list[dict[str, Any]] = field(default_factory=list)
    conversions: list[dict[str, Any]] = field(default_factory=list)
    n: int = 0

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n:010d}"

    def add(self, e: Exposure) -> None:
        sent = at(e.day, e.minute)
        sid, event = self._id("SM"), self._id("EV")
        status = "delivered" if e.delivered else "undelivered"
        self.messages.append({
            "sid": sid, "account_sid": "AC1", "direction": "outbound-api", "from_number": "+15550000000",
            "to_number": "+5511999990000", "status": status, "error_code": None if e.delivered else 30003, "num_segments": 1,
            "price": -e.cost, "price_unit": "USD", "price_usd": e.cost, "date_created": sent, "date_sent": sent,
            "date_updated": sent + timedelta(seconds=5), "to_country": e.country, "source": "api", "ingest_run_id": 1})
        self.sends.append({
            "event_id": event, "sent_at": sent, "channel": "sms", "purpose": "password_reset", "template_id": f"tmpl_{e.variant}",
            "experiment_id": e.experiment, "variant": e.variant, "user_id": e.user, "country": e.country, "provider_sid": sid,
            "fallback_of": None})
        if e.fallback_cost is not None:
            csid = self._id("CA")
            start = sent + timedelta(minutes=1)
            self.calls.append({
                "sid": csid, "account_sid": "AC1", "direction": "outbound-api", "status": "completed", "duration_s": 30,
                "price": -e.fallback_cost, "price_unit": "USD", "price_usd": e.fallback_cost, "start_time": start,
                "date_created": start, "date_updated": start, "to_country": e.country, "source": "api", "ingest_run_id": 1})
            self.sends.append({
                "event_id": self._id("EV"), "sent_at": start, "channel": "voice", "purpose": "password_reset",
                "template_id": "voice_otp", "experiment_id": None, "variant": None, "user_id": e.user, "country": e.country,
                "provider_sid": csid, "fallback_of": event})
        if e.convert_after is not None:
            self.conversions.append({"event_id": self._id("CV"), "user_id": e.user,
                                         "conversion_type": "password_reset_completed",
                                         "occurred_at": sent + timedelta(minutes=e.convert_after)})

    def build(self, path: str = ":memory:"):
        con = warehouse.connect(path)
        warehouse.create_schema(con)
        for table, rows in (("twilio_messages", self.messages), ("twilio_calls", self.calls),
                            ("send_log", self.sends), ("conversions", self.conversions)):
            if rows:
                df = pd.DataFrame(rows)
                con.register("_rows", df)
                cols = ", ".join(df.columns)
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _rows")
                con.unregister("_rows")
        warehouse.refresh_facts(con)
        return con


def build(exposures: list[Exposure]):
    b = Builder()
    for e in exposures:
        b.add(e)
    return b.build()


def arm(variant: str, users: int, conversions: int, *, prefix: str | None = None, delivered: int | None = None,
        cost: float = 0.05, experiment: str = "exp1", country: str = "BR", days: int = 7,
        convert_after: float = 5.0) -> list[Exposure]:
    """``users`` members in ``variant``, the first ``conversions`` convert ``convert_after`` minutes later."""
    delivered = users if delivered is None else delivered
    prefix = prefix or f"{experiment}_{variant}_"
    return [Exposure(user=f"{prefix}{i}", variant=variant, day=i % days, minute=i % 60, delivered=i < delivered,
                     cost=cost, convert_after=convert_after if i < conversions else None, country=country,
                     experiment=experiment)
            for i in range(users)]


# --------------------------------------------------------------------------- #
# variant_metrics: SQL numbers equal hand counts
# --------------------------------------------------------------------------- #
HAND = [
    # variant A: 4 members
    Exposure("a1", "A", cost=0.05, convert_after=3),
    Exposure("a2", "A", cost=0.10, convert_after=25, day=1),
    Exposure("a3", "A", cost=0.05, delivered=False, fallback_cost=0.20, convert_after=45, day=2),
    Exposure("a4", "A", cost=0.05, delivered=False, fallback_cost=0.30),
    # variant B: 3 members
    Exposure("b1", "B", cost=0.02, convert_after=1),
    Exposure("b2", "B", cost=0.02, convert_after=10, day=3),
    Exposure("b3", "B", cost=0.04),
    # another experiment and a non-experiment send: must not leak in
    Exposure("z1", "A", experiment="other", convert_after=1),
]


def hand_counts(exposures: list[Exposure], window: float = 30) -> dict[str, dict[str, float]]:
    """Per-variant aggregates computed in plain Python (one exposure per member here)."""
    out: dict[str, dict[str, float]] = {}
    for e in exposures:
        if e.experiment != "exp1":
            continue
        d = out.setdefault(e.variant, {"users": 0, "delivered_users": 0, "conversions": 0, "fallback_users": 0,
                                           "cost_sum": 0.0, "cost_sum_squares": 0.0, "cost_conversion_sum_product": 0.0,
                                           "time_to_convert_sum": 0.0, "time_to_convert_sum_squares": 0.0})
        cost = e.cost + (e.fallback_cost or 0.0)
        converted = e.convert_after is not None and e.convert_after <= window
        d["users"] += 1
        d["delivered_users"] += e.delivered
        d["conversions"] += converted
        d["fallback_users"] += e.fallback_cost is not None
        d["cost_sum"] += cost
        d["cost_sum_squares"] += cost * cost
        d["cost_conversion_sum_product"] += cost * converted
        if converted:
            d["time_to_convert_sum"] += e.convert_after
            d["time_to_convert_sum_squares"] += e.convert_after ** 2
    return out


def test_variant_metrics_equal_hand_counts():
    con = build(HAND)
    got = ex.variant_metrics(con, "exp1").set_index("variant")
    assert list(got.index) == ["A", "B"]
    expected = hand_counts(HAND)
    for variant, counts in expected.items():
        for column, value in counts.items():
            assert got.loc[variant, column] == pytest.approx(value, abs=1e-9), (variant, column)
    assert got.loc["A", "delivery_known_users"] == 4
    assert got.loc["A", "delivery_rate"] == pytest.approx(0.5)
    assert got.loc["A", "conversion_rate"] == pytest.approx(2 / 4)
    assert got.loc["A", "cost_per_conversion"] == pytest.approx((0.05 + 0.10 + 0.25 + 0.35) / 2)
    assert got.loc["A", "time_to_convert_mean"] == pytest.approx((3 + 25) / 2)
    assert got.loc["B", "fallback_rate"] == 0
    assert pd.Timestamp(got.loc["A", "first_day"]).date() == D0
    assert pd.Timestamp(got.loc["A", "last_day"]).date() == D0 + timedelta(days=2)


def test_variant_metrics_columns_and_unknown_experiment():
    con = build(HAND)
    df = ex.variant_metrics(con, "nope")
    assert list(df.columns) == ex.VARIANT_COLUMNS and df.empty


def test_first_exposure_decides_the_variant_and_members_count_once():
    exposures = [
        # u1: first in A, later (wrongly) in B: one member of A, both costs, conversion from the first send.
        Exposure("u1", "A", day=0, cost=0.05),
        Exposure("u1", "B", day=1, cost=0.07, convert_after=5),
        # u2: three sends in B: one member.
        Exposure("u2", "B", day=0, cost=0.01, convert_after=2),
        Exposure("u2", "B", day=1, cost=0.01),
        Exposure("u2", "B", day=2, cost=0.01),
        Exposure("u3", "A", day=0, cost=0.05),
    ]
    got = ex.variant_metrics(con := build(exposures), "exp1").set_index("variant")
    assert got.loc["A", "users"] == 2 and got.loc["B", "users"] == 1
    assert got.loc["A", "attempts"] == 3 and got.loc["B", "attempts"] == 3
    assert got.loc["A", "switched_users"] == 1 and got.loc["B", "switched_users"] == 0
    assert got.loc["A", "cost_sum"] == pytest.approx(0.05 + 0.07 + 0.05)
    assert got.loc["B", "cost_sum"] == pytest.approx(0.03)
    # u1's first send (day 0) was followed by a conversion a day and 5 minutes later: outside 30 min.
    assert got.loc["A", "conversions"] == 0
    assert got.loc["B", "conversions"] == 1
    analysis = ex.analyse_experiment(con, "exp1", weights=[1, 1], min_sample_size=0)
    assert any("more than one variant" in n for n in analysis.notes)


def test_window_changes_conversions():
    con = build(HAND)

    def conversions(window):
        return ex.variant_metrics(con, "exp1", window_minutes=window).set_index("variant")["conversions"].to_dict()

    assert conversions(None) == {"A": 2, "B": 2}  # the warehouse's 30-minute column
    assert conversions(30) == {"A": 2, "B": 2}
    assert conversions(5) == {"A": 1, "B": 1}
    assert conversions(0.5) == {"A": 0, "B": 0}
    assert conversions(60) == {"A": 3, "B": 2}
    for window in (5, 60):
        got = ex.variant_metrics(con, "exp1", window_minutes=window).set_index("variant")
        for variant, counts in hand_counts(HAND, window).items():
            for column in ("conversions", "cost_conversion_sum_product", "time_to_convert_sum"):
                assert got.loc[variant, column] == pytest.approx(counts[column]), (window, variant, column)


def test_period_and_country_filters():
    exposures = arm("A", 20, 5, country="BR") + arm("B", 20, 8, country="MX")
    con = build(exposures)
    only_br = ex.variant_metrics(con, "exp1", filters=Filters(countries=("BR",)))
    assert only_br["variant"].tolist() == ["A"]
    first_day = ex.variant_metrics(con, "exp1", start=D0, end=D0).set_index("variant")
    assert first_day.loc["A", "users"] == 3  # members 0, 7, 14 are sent on day 0
    # Template and channel filters are ignored: they are what experiments vary.
    templ = ex.variant_metrics(con, "exp1", filters=Filters(templates=("tmpl_A",), channels=("voice",)))
    assert templ["users"].tolist() == [20, 20]


# --------------------------------------------------------------------------- #
# analyse_experiment: numbers equal experiments_stats on the hand counts
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def ab_con():
    exposures = (arm("A", 400, 120, delivered=380, cost=0.05)
                 + arm("B", 400, 160, delivered=372, cost=0.04))
    # Some cost variation and fallbacks so the cost metrics have variance.
    for i, e in enumerate(exposures):
        if i % 9 == 0:
            e.fallback_cost = 0.1 + 0.01 * (i % 5)
        e.cost += 0.001 * (i % 7)
        if e.convert_after is not None:
            e.convert_after = 1 + (i % 20)
    return build(exposures), exposures


def test_analyse_numbers_equal_stats_on_hand_counts(ab_con):
    con, exposures = ab_con
    a = ex.analyse_experiment(con, "exp1", weights=[1, 1], min_sample_size=100)
    counts = hand_counts(exposures)
    c, t = counts["A"], counts["B"]
    rows = a.metrics.set_index(["metric", "variant"])

    conv = proportion_test((c["users"], c["conversions"]), (t["users"], t["conversions"]))
    r = rows.loc[("conversion", "B")]
    assert r.relative_lift == pytest.approx(conv.relative_lift, abs=1e-12)
    assert (r.rel_ci_low, r.rel_ci_high) == pytest.approx((conv.ci_low, conv.ci_high), abs=1e-12)
    assert (r.abs_lift, r.abs_ci_low, r.abs_ci_high) == pytest.approx(
        (conv.abs_lift, conv.abs_ci_low, conv.abs_ci_high), abs=1e-12)
    assert r.p_value == pytest.approx(conv.p_value, abs=1e-12)
    assert r.p_value_adjusted == pytest.approx(conv.p_value, abs=1e-12)  # one treatment: Holm changes nothing
    assert r.chance_to_win == pytest.approx(conv.chance_to_win, abs=1e-12)
    assert rows.loc[("conversion", "A"), "value"] == pytest.approx(120 / 400)

    delivery = proportion_test((400, 380), (400, 372))
    assert rows.loc[("delivery", "B"), "abs_lift"] == pytest.approx(delivery.abs_lift, abs=1e-12)
    assert rows.loc[("delivery", "B"), "p_value"] == pytest.approx(delivery.p_value, abs=1e-12)

    fallback = proportion_test((c["users"], c["fallback_users"]), (t["users"], t["fallback_users"]),
                               higher_is_better=False)
    assert rows.loc[("fallback", "B"), "chance_to_win"] == pytest.approx(fallback.chance_to_win, abs=1e-12)

    cost = mean_test(MeanStats(c["users"], c["cost_sum"], c["cost_sum_squares"]),
                     MeanStats(t["users"], t["cost_sum"], t["cost_sum_squares"]), higher_is_better=False)
    r = rows.loc[("cost_per_user", "B")]
    assert (r.relative_lift, r.rel_ci_low, r.rel_ci_high, r.p_value) == pytest.approx(
        (cost.relative_lift, cost.ci_low, cost.ci_high, cost.p_value), abs=1e-9)
    assert r.abs_lift == pytest.approx(cost.abs_diff, abs=1e-12)

    def ratio(d):
        return RatioStats(d["users"], d["cost_sum"], d["cost_sum_squares"], d["conversions"], d["conversions"],
                          d["cost_conversion_sum_product"])

    cpc = ratio_test(ratio(c), ratio(t), higher_is_better=False)
    r = rows.loc[("cost_per_conversion", "B")]
    assert (r.value, r.relative_lift, r.rel_ci_low, r.rel_ci_high) == pytest.approx(
        (cpc.treatment_value, cpc.relative_lift, cpc.ci_low, cpc.ci_high), abs=1e-9)

    ttc = mean_test(MeanStats(c["conversions"], c["time_to_convert_sum"], c["time_to_convert_sum_squares"]),
                    MeanStats(t["conversions"], t["time_to_convert_sum"], t["time_to_convert_sum_squares"]),
                    higher_is_better=False)
    assert rows.loc[("time_to_convert", "B"), "p_value"] == pytest.approx(ttc.p_value, abs=1e-9)

    assert a.srm is not None and a.srm.p_value == pytest.approx(srm_check([400, 400], [1, 1]).p_value)
    # B converts 40% vs 30%: a clear win; delivery slightly lower but not significantly: ship.
    assert a.verdict.decision == "ship"
    assert a.verdict.sentence.startswith("Ship B: conversion +33.3% (95% CI")
    assert "chance to beat A" in a.verdict.sentence and "delivery" in a.verdict.sentence
    assert set(a.guardrails["guardrail"]) == {"delivery", "cost"}
    assert not a.guardrails["hurt"].any()


def test_sequential_widens_the_interval(ab_con):
    con, _ = ab_con
    fixed = ex.analyse_experiment(con, "exp1", weights=[1, 1], min_sample_size=0)
    seq = ex.analyse_experiment(con, "exp1", weights=[1, 1], min_sample_size=0, sequential=True)
    f = fixed.metrics.set_index(["metric", "variant"]).loc[("conversion", "B")]
    s = seq.metrics.set_index(["metric", "variant"]).loc[("conversion", "B")]
    direct = proportion_test((400, 120), (400, 160), sequential=True)
    assert (s.rel_ci_low, s.rel_ci_high) == pytest.approx((direct.ci_low, direct.ci_high), abs=1e-12)
    assert s.rel_ci_high - s.rel_ci_low > f.rel_ci_high - f.rel_ci_low
    assert s.relative_lift == pytest.approx(f.relative_lift)


def test_abn_uses_holm_and_bonferroni_intervals():
    con = build(arm("A", 300, 90) + arm("B", 300, 135) + arm("C", 300, 96))
    a = ex.analyse_experiment(con, "exp1", weights=[1, 1, 1], min_sample_size=0)
    direct = compare_variants([Arm("A", 300, 90), Arm("B", 300, 135), Arm("C", 300, 96)])
    rows = a.metrics.set_index(["metric", "variant"])
    for comp in direct:
        r = rows.loc[("conversion", comp.treatment)]
        assert r.p_value_adjusted == pytest.approx(comp.p_value_adjusted, abs=1e-12)
        assert (r.rel_ci_low, r.rel_ci_high) == pytest.approx((comp.result.ci_low, comp.result.ci_high), abs=1e-12)
    assert a.treatments == ("B", "C")
    assert any("Holm" in n for n in a.notes)
    assert a.verdict.decision == "ship" and a.verdict.sentence.startswith("Ship B")


def test_abn_with_no_winner_stops_or_keeps_running():
    con = build(arm("A", 3000, 900) + arm("B", 3000, 905) + arm("C", 3000, 898))
    a = ex.analyse_experiment(con, "exp1", weights=[1, 1, 1], min_sample_size=0, mde_relative=0.2)
    assert a.verdict.decision == "stop: no effect likely"
    assert a.verdict.sentence.startswith("Stop: no variant beats the control - B: conversion +0.6% (97.5% CI")
    assert ".;" not in a.verdict.sentence and set(a.treatment_verdicts) == {"B", "C"}
    small_mde = ex.analyse_experiment(con, "exp1", weights=[1, 1, 1], min_sample_size=0, mde_relative=0.02)
    assert small_mde.verdict.decision == "keep running" and "to detect a 2% lift" in small_mde.verdict.sentence


def test_srm_flagged_when_the_split_is_skewed():
    con = build(arm("A", 300, 90) + arm("B", 200, 80))
    a = ex.analyse_experiment(con, "exp1", weights={"A": 1, "B": 1}, min_sample_size=0)
    assert a.srm is not None and not a.srm.ok
    assert a.srm.p_value == pytest.approx(srm_check([300, 200], [1, 1]).p_value)
    assert a.verdict.decision == "blocked: SRM"
    # The same counts are fine against a planned 60/40 split.
    planned = ex.analyse_experiment(con, "exp1", weights={"A": 0.6, "B": 0.4}, min_sample_size=0)
    assert planned.srm.ok and planned.verdict.decision != "blocked: SRM"


def test_guardrail_hurt_blocks_ship():
    # B converts better but its delivery collapses: do not ship.
    con = build(arm("A", 400, 100, delivered=390) + arm("B", 400, 150, delivered=300))
    a = ex.analyse_experiment(con, "exp1", weights=[1, 1], min_sample_size=0)
    assert a.verdict.decision == "do not ship"
    hurt = a.guardrails.set_index("guardrail")["hurt"]
    assert bool(hurt["delivery"]) and not bool(hurt["cost"])


def test_too_early_and_power_plan():
    con = build(arm("A", 40, 10) + arm("B", 40, 12))
    a = ex.analyse_experiment(con, "exp1", weights=[1, 1], min_sample_size=100, mde_relative=0.2)
    assert a.verdict.decision == "keep running" and "too early" in a.verdict.sentence
    p = a.power
    assert p is not None and p.users_per_arm == 40 and p.days_so_far == 7 and p.baseline_rate == 0.25
    from switchboard.analytics.experiments_stats import days_needed, required_sample_size

    assert p.required_users_per_arm == required_sample_size(0.25, 0.2)
    assert p.days_more == days_needed(0.25, 0.2, 40, 7)
    late = ex.analyse_experiment(con, "exp1", weights=[1, 1], min_sample_size=0, mde_relative=0.2)
    assert late.verdict.decision == "keep running"
    assert f"about {p.days_more} more days to detect a 20% lift" in late.verdict.sentence


def test_one_arm_and_unknown_experiment_do_not_crash():
    con = build(arm("A", 30, 3))
    a = ex.analyse_experiment(con, "exp1", weights=[1])
    assert a.verdict.decision == "keep running" and a.metrics.empty
    none = ex.analyse_experiment(con, "missing")
    assert none.verdict.decision == "keep running" and none.control is None
    assert "Experiment `missing`" in ex.summary_markdown(none)
    ex.summary_csv(none)


# --------------------------------------------------------------------------- #
# list_experiments, country breakdown, exports, planned weights
# --------------------------------------------------------------------------- #
def test_list_experiments():
    exposures = (arm("A", 150, 30) + arm("B", 150, 60)
                 + arm("control", 120, 30, experiment="old", days=2) + arm("treat", 120, 31, experiment="old", days=2))
    for e in exposures:
        if e.experiment == "exp1":
            e.day += 3  # exp1 runs days 3..9 and is still running; "old" ended on day 1
    con = build(exposures)
    df = ex.list_experiments(con, start=D0, end=D0 + timedelta(days=30))
    assert list(df.columns) == ex.EXPERIMENT_COLUMNS
    rows = df.set_index("experiment_id")
    assert df["experiment_id"].tolist() == ["exp1", "old"]  # newest first
    assert rows.loc["exp1", "variants"] == "A, B" and rows.loc["old", "variants"] == "control, treat"
    assert rows.loc["exp1", "users"] == 300 and rows.loc["exp1", "days_running"] == 7
    assert rows.loc["exp1", "status"] == "running" and rows.loc["old", "status"] == "ended"
    assert rows.loc["exp1", "decision"] == "ship"
    assert rows.loc["old", "decision"] in ("keep running", "stop: no effect likely")
    assert ex.list_experiments(con, start=D0 + timedelta(days=40), end=D0 + timedelta(days=41)).empty


def test_empty_warehouse():
    con = Builder().build()
    df = ex.list_experiments(con, start=D0, end=D0)
    assert df.empty and list(df.columns) == ex.EXPERIMENT_COLUMNS
    assert ex.country_breakdown(con, "exp1").empty
    assert ex.variant_metrics(con, "exp1").empty


def test_country_breakdown_top_n_plus_other():
    exposures = (arm("A", 60, 20, country="BR", prefix="br_a") + arm("B", 60, 30, country="BR", prefix="br_b")
                 + arm("A", 30, 10, country="MX", prefix="mx_a") + arm("B", 30, 10, country="MX", prefix="mx_b")
                 + arm("A", 10, 2, country="CO", prefix="co_a") + arm("B", 12, 3, country="CO", prefix="co_b"))
    con = build(exposures)
    df = ex.country_breakdown(con, "exp1", top_n=1)
    assert list(df.columns) == ex.COUNTRY_COLUMNS and df["exploratory"].all()
    assert df["country_name"].tolist() == ["Brazil", "Brazil", "Other", "Other"]
    other = df[df["country_name"] == "Other"].set_index("variant")
    assert other.loc["A", "users"] == 40 and other.loc["B", "users"] == 42
    assert other.loc["B", "conversions"] == 13
    br_b = df[(df["country_name"] == "Brazil") & (df["variant"] == "B")].iloc[0]
    direct = proportion_test((60, 20), (60, 30))
    assert br_b.relative_lift == pytest.approx(direct.relative_lift)
    assert br_b.abs_ci_low == pytest.approx(direct.abs_ci_low)
    assert math.isnan(df.iloc[0]["relative_lift"])  # control row
    shown = ex.country_display(df)
    assert list(shown.columns) == ex.COUNTRY_DISPLAY_COLUMNS
    assert shown.iloc[0]["Variant"] == "A (control)" and shown.iloc[0]["Relative lift (CI)"] == ""
    assert shown.iloc[1]["Relative lift (CI)"].startswith("+50.0% (")
    assert shown.iloc[1]["Absolute lift (CI)"].startswith("+16.67 pp (")


def test_summary_exports(ab_con):
    con, _ = ab_con
    a = ex.analyse_experiment(con, "exp1", weights=[1, 1], min_sample_size=0, window_minutes=30)
    md = ex.summary_markdown(a)
    assert a.verdict.sentence in md and "| Conversion rate | B |" in md
    assert "percentage points" in md and "Chance to win" in md and "30 minutes" in md
    back = pd.read_csv(io.StringIO(ex.summary_csv(a)))
    assert len(back) == len(a.metrics)
    row = back[(back["metric"] == "conversion") & (back["variant"] == "B")].iloc[0]
    expected = a.metrics.set_index(["metric", "variant"]).loc[("conversion", "B")]
    assert row["relative_lift"] == pytest.approx(expected.relative_lift)
    assert row["abs_lift"] == pytest.approx(expected.abs_lift)
    assert (back["decision"] == a.verdict.decision).all()


def test_planned_weights_and_control_from_the_plan(tmp_path, monkeypatch):
    gt = tmp_path / "ground_truth.json"
    gt.write_text(json.dumps({"experiments": [
        {"experiment_id": "exp_x", "variants": ["long_code", "alpha"], "countries": ["BR"]},
        {"experiment_id": "exp_y", "variants": [{"name": "A", "weight": 0.7}, {"name": "B", "weight": 0.3}]},
        {"experiment_id": "exp_z", "weights": {"A": 2, "B": 1}},
        {"experiment_id": "exp_w", "variants": ["A", "B"], "weights": [3, 1]},
    ]}))
    assert ex.planned_weights("exp_y", ["A", "B"], [gt]) == ((0.7, 0.3), "planned split from ground_truth.json")
    assert ex.planned_weights("exp_z", ["B", "A"], [gt])[0] == (1.0, 2.0)
    assert ex.planned_weights("exp_w", ["A", "B"], [gt])[0] == (3.0, 1.0)
    weights, source = ex.planned_weights("exp_x", ["long_code", "alpha"], [gt])
    assert weights == (1.0, 1.0) and "equal split" in source
    assert ex.planned_weights("exp_y", ["A", "B"], [tmp_path / "missing.json"])[0] == (1.0, 1.0)
    assert ex.experiment_plan("exp_x", [gt]).variants == ("long_code", "alpha")
    # The plan's first variant is the control even when its name sorts last; the caller names the files.
    send_logs = tmp_path / "send_logs"
    send_logs.mkdir()
    (send_logs / "ground_truth.json").write_text(gt.read_text())
    plans = ex.PlanFiles(ex.plan_files(send_logs, tmp_path))
    con = build(arm("long_code", 50, 10, experiment="exp_x") + arm("alpha", 50, 12, experiment="exp_x"))
    assert ex.variant_metrics(con, "exp_x", plan=plans("exp_x"))["variant"].tolist() == ["long_code", "alpha"]
    assert ex.analyse_experiment(con, "exp_x", plans=plans).control == "long_code"
    # without a plan the analysis reads no file, whatever the settings say: control by name ("alpha")
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    assert ex.analyse_experiment(con, "exp_x").control == "alpha"
    assert ex.variant_metrics(con, "exp_x", control="alpha")["variant"].tolist() == ["alpha", "long_code"]


# --------------------------------------------------------------------------- #
# The sandbox world: known true effects are found, nulls are not shipped
# --------------------------------------------------------------------------- #
def _world_warehouse(world):
    """Load a sandbox World's frames into a fresh warehouse (messages, calls, send log, conversions)."""
    con = warehouse.connect(":memory:")
    warehouse.create_schema(con)
    m = world.messages
    accounts = [a["sid"] for a in world.accounts]
    msgs = pd.DataFrame({
        "sid": m["sid"].astype(str), "account_sid": np.array(accounts, dtype=object)[m["account_idx"].to_numpy()],
        "direction": "outbound-api", "status": m["status"].astype(str),
        "error_code": m["error_code"].where(m["error_code"] > 0).astype("Int64"),
        "num_segments": m["num_segments"].astype(int), "price_usd": m["price"].abs(),
        "date_sent": pd.to_datetime(m["date_sent"], unit="s", utc=True),
        "date_updated": pd.to_datetime(m["final_at"], unit="s", utc=True),
        "to_country": m["country"].astype(str), "source": "api"})
    k = world.calls
    calls = pd.DataFrame({
        "sid": k["sid"].astype(str), "account_sid": accounts[0], "direction": "outbound-api",
        "status": k["status"].astype(str), "duration_s": k["duration"].astype(int), "price_usd": k["price"].abs(),
        "start_time": pd.to_datetime(k["start_time"], unit="s", utc=True),
        "date_created": pd.to_datetime(k["date_created"], unit="s", utc=True),
        "to_country": k["country"].astype(str), "source": "api"})
    sends = world.send_log.drop(columns=["_ms"]).copy()
    sends["sent_at"] = pd.to_datetime(sends["sent_at"], utc=True)
    conv = world.conversions[["event_id", "user_id", "conversion_type", "occurred_at"]].copy()
    conv["occurred_at"] = pd.to_datetime(conv["occurred_at"], utc=True)
    for table, df in (("twilio_messages", msgs), ("twilio_calls", calls), ("send_log", sends),
                      ("conversions", conv)):
        con.register("_rows", df)
        cols = ", ".join(df.columns)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _rows")
        con.unregister("_rows")
    warehouse.refresh_facts(con)
    return con


LATAM = ("BR", "MX")


@pytest.fixture(scope="module")
def world_con():
    try:
        from switchboard.sandbox.world import Scenario, generate
    except ImportError as err:  # the sandbox is mid-change in a shared tree; its own tests report that
        pytest.skip(f"switchboard.sandbox.world not importable: {err}")

    # A fixed seed makes this deterministic. Each null comparison below is falsely called
    # "ship" with probability <= 2.5% per seed; seed 11 at this size is such a case (the
    # sandbox's own ground truth shows the arms 2.8 pp apart outside LATAM by chance).
    scenario = Scenario(seed=12, days=28, messages=50_000, calls=4_000, end=datetime(2026, 11, 1, tzinfo=UTC),
                        countries=(("BR", 3.0), ("MX", 2.0), ("US", 3.0), ("IN", 2.0)))
    world = generate(scenario)
    return _world_warehouse(world), world


def test_sandbox_true_effect_found_and_nulls_not_shipped(world_con, tmp_path, monkeypatch):
    con, world = world_con
    # The sandbox writes ground_truth.json beside its send logs; the caller hands it to the analysis,
    # which reads the control from it.
    (tmp_path / "send_logs").mkdir()
    (tmp_path / "send_logs" / "ground_truth.json").write_text(json.dumps(world.ground_truth, default=str))
    plans = ex.PlanFiles(ex.plan_files(tmp_path / "send_logs"))
    truth = {e["experiment_id"]: e for e in world.ground_truth["experiments"]}
    assert {"exp_pr_short_template", "exp_alpha_sender"} <= set(truth)  # and exp_mkt_urgency, exp_alert_wording
    assert "weights" not in truth["exp_pr_short_template"]  # the sandbox assigns 50/50 and records no split

    short = truth["exp_pr_short_template"]
    in_region = ex.analyse_experiment(con, short["experiment_id"], filters=Filters(countries=LATAM), plans=plans)
    assert in_region.control == "control" and in_region.treatments == ("short",)
    result = in_region.results["conversion"]["short"]
    assert short["conversion_lift"] > 0 and result.ci_low > 0  # the true lift, found, with the right sign
    assert in_region.srm.ok and in_region.verdict.decision == "ship"
    assert in_region.verdict.sentence.startswith("Ship short: conversion +")

    # Outside its region the short template has no effect on conversion: never "ship".
    outside = ex.analyse_experiment(con, short["experiment_id"], filters=Filters(countries=("US", "IN")), plans=plans)
    assert outside.verdict.decision != "ship"
    assert outside.srm.ok

    # The alpha sender hurts delivery in South Asia: its guardrail catches it.
    alpha = ex.analyse_experiment(con, "exp_alpha_sender", filters=Filters(countries=("IN",)), plans=plans)
    assert truth["exp_alpha_sender"]["delivery_lift"] < 0
    assert alpha.control == "long_code"
    assert alpha.verdict.decision == "do not ship"
    assert alpha.guardrails.set_index("guardrail").loc["delivery", "hurt"]
    # ... and does nothing elsewhere: no ship.
    assert ex.analyse_experiment(con, "exp_alpha_sender", filters=Filters(countries=("US", "BR", "MX")),
                                 plans=plans
                                 ).verdict.decision != "ship"

    listed = ex.list_experiments(con, start=date(2026, 10, 1), end=date(2026, 10, 31), plans=plans).set_index("experiment_id")
    assert set(listed.index) == set(truth)
    assert (listed["status"] == "running").all()


# --------------------------------------------------------------------------- #
# The one-pass SQL (arg_min first exposure) equals the window-function definition
# --------------------------------------------------------------------------- #
# The original per-variant query (row_number() first exposure, count(DISTINCT variant), fallback
# join on every attempt), kept here as the reference the faster experiments_variant_metrics.sql
# must match.
_REFERENCE_SQL = """
WITH exposures AS (
    SELECT a.*
    FROM attempt_facts a
    WHERE a.experiment_id IS NOT NULL
      AND a.variant IS NOT NULL
      AND NOT a.is_fallback
      AND ($all_experiments OR list_contains($experiment_ids, a.experiment_id))
      AND {where}
),
first_exposure AS (
    SELECT *
    FROM exposures
    QUALIFY row_number() OVER (PARTITION BY experiment_id, user_id ORDER BY sent_at, event_id) = 1
),
per_user AS (
    SELECT
        e.experiment_id,
        e.user_id,
        count(*)                                                    AS attempts,
        count(DISTINCT e.variant)                                   AS variants_seen,
        sum(coalesce(e.cost_usd, 0) + coalesce(fb.cost_usd, 0))     AS cost,
        max(e.sent_day)                                             AS last_day
    FROM exposures e
    LEFT JOIN attempt_facts fb ON fb.event_id = e.fallback_event_id
    GROUP BY e.experiment_id, e.user_id
),
units AS (
    SELECT
        f.experiment_id,
        f.user_id,
        f.variant,
        {segment}                                                   AS segment,
        {segment_name}                                              AS segment_name,
        f.is_delivered,
        f.fallback_event_id IS NOT NULL                             AS fell_back,
        CASE WHEN CAST($window_minutes AS DOUBLE) IS NULL THEN coalesce(f.converted, false)
             ELSE coalesce(f.minutes_to_conversion <= CAST($window_minutes AS DOUBLE), false)
        END                                                         AS converted,
        f.minutes_to_conversion,
        f.sent_day                                                  AS first_day,
        u.last_day,
        u.attempts,
        u.variants_seen,
        u.cost
    FROM first_exposure f
    JOIN per_user u ON u.experiment_id = f.experiment_id AND u.user_id = f.user_id
)
SELECT
    experiment_id,
    segment,
    any_value(segment_name)                                             AS segment_name,
    variant,
    count(*)                                                            AS users,
    count(is_delivered)                                                 AS delivery_known_users,
    count(*) FILTER (WHERE is_delivered)                                AS delivered_users,
    count(*) FILTER (WHERE converted)                                   AS conversions,
    count(*) FILTER (WHERE fell_back)                                   AS fallback_users,
    sum(attempts)                                                       AS attempts,
    count(*) FILTER (WHERE variants_seen > 1)                           AS switched_users,
    coalesce(sum(cost), 0)                                              AS cost_sum,
    coalesce(sum(cost * cost), 0)                                       AS cost_sum_squares,
    coalesce(sum(cost) FILTER (WHERE converted), 0)                     AS cost_conversion_sum_product,
    coalesce(sum(minutes_to_conversion) FILTER (WHERE converted), 0)    AS time_to_convert_sum,
    coalesce(sum(minutes_to_conversion * minutes_to_conversion) FILTER (WHERE converted), 0)
                                                                        AS time_to_convert_sum_squares,
    min(first_day)                                                      AS first_day,
    max(last_day)                                                       AS last_day
FROM units
GROUP BY experiment_id, segment, variant
ORDER BY experiment_id, segment, variant
"""


def _reference_aggregates(con, experiment_ids, *, start=None, end=None, filters=None, window_minutes=None,
                          segment="none"):
    from switchboard.analytics import _sql

    lo, hi = start or ex.data._ALL_TIME[0], end or ex.data._ALL_TIME[1]
    where, params = _sql.where_for("attempt_facts", lo, hi, ex.data._experiment_filters(filters), alias="a")
    seg, seg_name = ex.data._SEGMENTS[segment]
    params.update(all_experiments=experiment_ids is None, experiment_ids=list(experiment_ids or []),
                  window_minutes=None if window_minutes is None else float(window_minutes))
    df = con.execute(_REFERENCE_SQL.format(where=where, segment=seg, segment_name=seg_name), params).df()
    for c in ex.data._SUM_COLUMNS:
        df[c] = pd.to_numeric(df[c]).astype("int64" if c in ex.data._INT_COLUMNS else "float64")
    return df


def _ties_and_switchers_con():
    exposures = arm("A", 40, 9, days=5) + arm("B", 40, 14, days=5, cost=0.06)
    exposures += [
        # same sent_at in two variants: the lower event_id (added first) is the first exposure
        Exposure("tie1", "B", day=1, minute=7, cost=0.02, convert_after=3),
        Exposure("tie1", "A", day=1, minute=7, cost=0.03),
        Exposure("tie2", "A", day=2, minute=1, fallback_cost=0.11),
        Exposure("tie2", "B", day=2, minute=1, fallback_cost=0.13, convert_after=1),
        # switcher with fallbacks on later sends, another experiment, another country
        Exposure("sw1", "A", day=0, delivered=False, fallback_cost=0.2, country="MX"),
        Exposure("sw1", "B", day=3, fallback_cost=0.3, convert_after=10, country="US"),
        Exposure("o1", "X", day=1, experiment="exp2", convert_after=50, country="US"),
        Exposure("o2", "Y", day=2, experiment="exp2", fallback_cost=0.4),
    ]
    return build(exposures)


@pytest.mark.parametrize("segment", ["none", "country"])
@pytest.mark.parametrize("window", [None, 30.0, 2000.0])
@pytest.mark.parametrize("case", ["all", "exp1", "period", "country_filter"])
def test_one_pass_sql_equals_the_window_definition(segment, window, case):
    con = _ties_and_switchers_con()
    kwargs: dict[str, Any] = {"experiment_ids": None if case == "all" else ["exp1"], "window_minutes": window,
                              "segment": segment, "start": None, "end": None, "filters": None}
    if case == "period":
        kwargs.update(start=D0 + timedelta(days=1), end=D0 + timedelta(days=3))
    if case == "country_filter":
        kwargs.update(filters=Filters(countries=("BR", "MX")))
    ids = kwargs.pop("experiment_ids")
    want = _reference_aggregates(con, ids, **kwargs)
    got = ex.data._aggregates(con, ids, **kwargs)
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


def test_analysis_reads_no_settings_and_no_files():
    """analysis takes the plan and the minimum sample size as parameters (issue 14): neither it nor the
    data or report halves import the settings or look for the sandbox's ground_truth.json."""
    import inspect

    from switchboard.analytics.experiments import analysis, data, model, report
    from switchboard.core.settings import Settings

    for module in (analysis, data, model, report):
        text = inspect.getsource(module)
        assert "Settings" not in text and "from_env" not in text and "ground_truth" not in text, module.__name__
    assert ex.DEFAULT_MIN_SAMPLE_SIZE == Settings().min_sample_size
