"""Tests for the second-round experiment read (issue 19): the pre-period covariate in SQL (counted by hand),
the opt-out guardrail (blocks "ship" when it got worse, skipped and stated without replies), the readout's
CUPED against ``cuped_test`` on the same sums, and the sandbox's ground truth recovered end to end (the
region-flipped experiment is flagged and gets the decision its truth implies; CUPED narrows intervals).

Hand warehouses go through the real schema, facts and views (``Builder`` from test_experiments_data).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from switchboard.analytics import experiments as ex
from switchboard.analytics.experiments_stats import CupedStats, cuped_test
from tests.test_experiments_data import D0, Builder, Exposure, arm, at

PERIOD = {"start": D0 - timedelta(days=60), "end": D0 + timedelta(days=30)}


def _conversion(b: Builder, user: str, when: datetime) -> None:
    b.conversions.append({"event_id": b._id("CV"), "user_id": user, "conversion_type": "login",
                          "occurred_at": when})


# --------------------------------------------------------------------------- #
# The pre-period covariate, counted by hand
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def covariate_con():
    """Five members of exp1, first exposure on day 10; conversions before, in and after their pre-period."""
    b = Builder()
    first = 10
    b.add(Exposure("a", "A", day=first, convert_after=5))           # y = 1
    b.add(Exposure("a", "A", day=first + 2))                        # a later exposure: not the first
    b.add(Exposure("b", "A", day=first))                            # y = 0, no history
    b.add(Exposure("c", "B", day=first, convert_after=5))           # y = 1
    b.add(Exposure("d", "B", day=first, convert_after=45))          # converts after the 30-minute window: y = 0
    b.add(Exposure("e", "B", day=first + 1, minute=30))             # y = 0
    b.add(Exposure("a", "none", day=first - 5, experiment=None))    # a delivered send before: deliveries x = 1
    b.add(Exposure("e", "none", day=first - 40, experiment=None))   # outside the 28-day pre-period
    for days_before in (3, 20, 40):                                 # a: 2 inside 28 days (40 is outside)
        _conversion(b, "a", at(first) - timedelta(days=days_before))
    _conversion(b, "c", at(first) - timedelta(days=1))              # c: 1
    for hours in (2, 30, 600):                                      # d: 3, all inside
        _conversion(b, "d", at(first) - timedelta(hours=hours))
    _conversion(b, "e", at(first + 1, 30) - timedelta(days=28, minutes=-1))  # e: just inside 28 days
    _conversion(b, "e", at(first + 1, 30) + timedelta(hours=1))     # after the exposure: never x
    con = b.build()
    con.execute("UPDATE send_log SET variant = NULL WHERE experiment_id IS NULL")
    from switchboard.ingest import warehouse

    warehouse.refresh_facts(con)
    return con


def _by_variant(pre: ex.PrePeriodData) -> pd.DataFrame:
    return pre.rows.groupby("variant")[["users", "y_sum", "x_sum", "x_sum_squares", "xy_sum", "pre_users"]].sum()


def test_preperiod_conversions_counted_by_hand(covariate_con) -> None:
    pre = ex.preperiod_data(covariate_con, "exp1", **PERIOD, window_minutes=30.0, pre_days=28)
    got = _by_variant(pre)
    # A: a (x=2, y=1), b (x=0, y=0). B: c (x=1, y=1), d (x=3, y=0), e (x=1, y=0).
    assert got.loc["A"].to_dict() == {"users": 2, "y_sum": 1, "x_sum": 2, "x_sum_squares": 4, "xy_sum": 2,
                                      "pre_users": 1}
    assert got.loc["B"].to_dict() == {"users": 3, "y_sum": 1, "x_sum": 5, "x_sum_squares": 11, "xy_sum": 1,
                                      "pre_users": 3}
    assert pre.has_responses and (pre.rows["opt_out_users"] == 0).all()  # no member replied


def test_preperiod_length_and_deliveries_covariate(covariate_con) -> None:
    short = _by_variant(ex.preperiod_data(covariate_con, "exp1", **PERIOD, window_minutes=30.0, pre_days=2))
    # 2 days: a none (3 and 20 days before), c 1 (1 day), d 3 (2 h, 30 h; 600 h is 25 days: out) -> 2, e 0.
    assert short.loc["A", "x_sum"] == 0 and short.loc["B", "x_sum"] == 3
    deliveries = _by_variant(ex.preperiod_data(covariate_con, "exp1", **PERIOD, covariate="deliveries"))
    # a's delivered non-experiment send 5 days before; e's was 40 days before (outside 28 days).
    assert deliveries.loc["A", "x_sum"] == 1 and deliveries.loc["B", "x_sum"] == 0
    with pytest.raises(ValueError, match="allowed: conversions, deliveries"):
        ex.preperiod_data(covariate_con, "exp1", covariate="logins")
    with pytest.raises(ValueError, match="pre_days"):
        ex.preperiod_data(covariate_con, "exp1", pre_days=0)


def test_readout_cuped_equals_cuped_test_on_the_same_sums(covariate_con) -> None:
    pre = ex.preperiod_data(covariate_con, "exp1", **PERIOD, window_minutes=30.0)
    assert ex.cuped_stats(pre, "A") == CupedStats(2, 1.0, 1.0, 2.0, 4.0, 2.0)
    page = ex.experiment_data(covariate_con, **PERIOD, window_minutes=30.0)
    r = ex.experiment_readout(ex.analyse_from(page, "exp1"), page, pre)
    assert r.cuped["B"] == cuped_test(ex.cuped_stats(pre, "A"), ex.cuped_stats(pre, "B"), alpha=0.05)


# --------------------------------------------------------------------------- #
# The opt-out guardrail
# --------------------------------------------------------------------------- #
def _winner(b: Builder) -> None:
    """B converts 160/400 against A's 100/400 over 7 days: a clear Ship on conversion alone."""
    for e in arm("A", 400, 100, experiment="exp_ship") + arm("B", 400, 160, experiment="exp_ship"):
        b.add(e)


def _responses(con, opt_outs: dict[str, int]) -> None:
    """Replies in _response_facts (ingest/responses.sql, issue 18), one classified reply per row: the first n
    members of each arm opted out, and one member asked for HELP (not an opt-out)."""
    rows = [{"experiment_id": "exp_ship", "variant": v, "user_id": f"exp_ship_{v}_{i}", "classification": "opt_out",
             "received_at": datetime(D0.year, D0.month, D0.day, tzinfo=UTC) + timedelta(days=8)}
            for v, n in opt_outs.items() for i in range(n)]
    rows.append({"experiment_id": "exp_ship", "variant": "A", "user_id": "exp_ship_A_399", "classification": "help",
                 "received_at": datetime(D0.year, D0.month, D0.day, tzinfo=UTC) + timedelta(days=8)})
    con.register("_rows", pd.DataFrame(rows))
    con.execute("INSERT INTO _response_facts (experiment_id, variant, user_id, classification, received_at) "
                "SELECT experiment_id, variant, user_id, classification, CAST(received_at AS TIMESTAMPTZ) FROM _rows")
    con.unregister("_rows")


def _read(con) -> ex.Readout:
    page = ex.experiment_data(con, **PERIOD)
    pre = ex.preperiod_data(con, "exp_ship", **PERIOD)
    return ex.experiment_readout(ex.analyse_from(page, "exp_ship"), page, pre)


def test_without_replies_the_opt_out_guardrail_is_skipped_and_said() -> None:
    b = Builder()
    _winner(b)
    con = b.build()
    con.execute("DROP VIEW IF EXISTS responses")
    con.execute("DROP TABLE _response_facts CASCADE")  # a warehouse built before replies were ingested
    r = _read(con)
    assert r.decision.outcome == "Ship"
    assert "opt-out rate" not in r.guardrails["B"]
    assert any("not measured" in n and "_response_facts" in n for n in r.guardrail_notes)


def test_opt_out_guardrail_blocks_ship() -> None:
    b = Builder()
    _winner(b)
    con = b.build()
    _responses(con, {"A": 10, "B": 60})
    pre = ex.preperiod_data(con, "exp_ship", **PERIOD)
    assert pre.has_responses
    assert pre.rows.groupby("variant")["opt_out_users"].sum().to_dict() == {"A": 10, "B": 60}  # "help" is not one
    r = _read(con)
    guard = r.guardrails["B"]["opt-out rate"]
    assert guard.control_rate == pytest.approx(10 / 400) and guard.treatment_rate == pytest.approx(60 / 400)
    assert r.decision.outcome == "Don't ship" and r.decision.rule == 2
    assert "opt-out rate got worse" in r.decision.reason and r.decision.breached == ("opt-out rate",)


def test_opt_out_before_first_exposure_does_not_count() -> None:
    b = Builder()
    _winner(b)
    con = b.build()
    _responses(con, {"A": 10, "B": 60})
    con.execute("UPDATE _response_facts SET received_at = received_at - INTERVAL 30 DAY WHERE variant = 'B'")
    r = _read(con)
    assert r.guardrails["B"]["opt-out rate"].treatment_rate == 0.0
    assert r.decision.outcome == "Ship"


# --------------------------------------------------------------------------- #
# The sandbox's ground truth, recovered end to end
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def sandbox_world():
    try:
        from switchboard.sandbox.world import Scenario, generate
    except ImportError as err:  # the sandbox is mid-change in a shared tree; its own tests report that
        pytest.skip(f"switchboard.sandbox.world not importable: {err}")
    from tests.test_experiments_data import _world_warehouse

    world = generate(Scenario(seed=7, days=60, messages=150_000, calls=10_000,
                              end=datetime(2026, 11, 1, tzinfo=UTC)))
    return _world_warehouse(world), world


def _sandbox_read(sandbox_world, experiment_id: str, **kwargs) -> ex.Readout:
    """The readout as the page builds it, with the control the sandbox recorded (its plan, first variant)."""
    con, world = sandbox_world
    control = next(e["variants"][0] for e in world.ground_truth["experiments"] if e["experiment_id"] == experiment_id)
    page = ex.experiment_data(con)
    pre = ex.preperiod_data(con, experiment_id)
    return ex.experiment_readout(ex.analyse_from(page, experiment_id, control=control), page, pre, **kwargs)


@pytest.mark.slow
def test_sandbox_region_flip_is_flagged_and_decided_as_truth_says(sandbox_world) -> None:
    _con, world = sandbox_world
    truth = {e["experiment_id"]: e for e in world.ground_truth["experiments"]}["exp_alert_wording"]
    assert truth["differs_by_country"] and truth["conversion_lift"] > 0 > truth["opposite_conversion_lift"]
    for correction in ("holm", "bh"):
        r = _sandbox_read(sandbox_world, "exp_alert_wording", correction=correction)
        h = r.heterogeneity["direct"]
        assert h.differs and h.opposite, h.message
        worse = {s.segment for s in h.segments if s.direction == "worse"}
        better = {s.segment for s in h.segments if s.direction == "better"}
        assert worse and worse <= set(truth["opposite_countries"])  # it hurts only where truth says
        assert better and better <= set(truth["countries"])  # and helps only there
        assert r.decision.outcome == truth["expected_decision"] and r.decision.rule == 5
        assert "hurts" in r.decision.reason


@pytest.mark.slow
def test_sandbox_pre_period_makes_cuped_narrow_the_intervals(sandbox_world) -> None:
    _con, world = sandbox_world
    assert world.ground_truth["member_engagement"]["spread"] > 0
    r = _sandbox_read(sandbox_world, "exp_pr_short_template")
    assert r.cuped_used
    c = r.cuped["short"]
    # Members have about one SMS in their 28-day pre-period here, so the reduction is small (0.16% with
    # this seed) but real: the pre-period predicts the test (theta > 0) and the interval narrows by it.
    assert c.theta > 0 and c.correlation > 0
    assert 0.0005 < c.variance_reduction < 0.5
    width = c.ci_high - c.ci_low
    unadjusted = c.unadjusted_ci_high - c.unadjusted_ci_low
    assert width == pytest.approx(unadjusted * math.sqrt(1 - c.variance_reduction), rel=1e-6)
    # The regions without an effect still show none after adjustment: the adjusted lift stays near the raw one.
    assert abs(c.relative_lift - c.unadjusted_lift) < 2 * c.unadjusted_se
    # Other experiments in the same world keep their truths: the alpha sender still never ships.
    assert _sandbox_read(sandbox_world, "exp_alpha_sender").decision.outcome != "Ship"


# --------------------------------------------------------------------------- #
# Holm or Benjamini-Hochberg across treatments
# --------------------------------------------------------------------------- #
def test_analysis_adjusts_treatments_with_the_chosen_correction() -> None:
    from switchboard.analytics.experiments_stats import benjamini_hochberg, holm_adjust

    b = Builder()
    for v, conversions in (("A", 100), ("B", 125), ("C", 130), ("D", 104)):
        for e in arm(v, 400, conversions, experiment="exp_abn"):
            b.add(e)
    con = b.build()
    page = ex.experiment_data(con, **PERIOD)
    raw = [ex.analyse_from(page, "exp_abn").results["conversion"][t].p_value for t in ("B", "C", "D")]
    for correction, adjust in (("holm", holm_adjust), ("bh", benjamini_hochberg)):
        m = ex.analyse_from(page, "exp_abn", correction=correction).metrics
        got = m[(m["metric"] == "conversion") & ~m["is_control"]].set_index("variant")["p_value_adjusted"]
        assert list(got.loc[["B", "C", "D"]]) == pytest.approx(adjust(raw))
    assert benjamini_hochberg(raw) != pytest.approx(holm_adjust(raw))  # the choice matters here
    with pytest.raises(ValueError, match="holm"):
        ex.analyse_from(page, "exp_abn", correction="bonferroni")
