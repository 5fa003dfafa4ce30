"""The experiments' per-variant aggregates from ``_experiment_exposures`` (ingest/facts.sql) equal the
ones read from attempt_facts, and both equal the original window-function definition kept in
tests/test_experiments_data.py; the table is used when it is up to date and skipped otherwise."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from switchboard.analytics import experiments as ex
from switchboard.analytics.filters import Filters
from switchboard.ingest import warehouse
from tests.test_experiments_data import (  # noqa: F401
    D0,
    Builder,
    Exposure,
    _no_plan_files,
    _reference_aggregates,
    arm,
    at,
    build,
)


def _exposures() -> list[Exposure]:
    """Ties, switchers (across variants and countries), fallbacks, two experiments, over six days."""
    exposures = arm("A", 30, 8, days=6) + arm("B", 30, 13, days=6, cost=0.06, country="MX")
    exposures += arm("C", 12, 5, days=4, country="US")
    exposures += [
        Exposure("tie1", "B", day=1, minute=7, cost=0.02, convert_after=3),
        Exposure("tie1", "A", day=1, minute=7, cost=0.03),
        Exposure("tie2", "A", day=2, minute=1, fallback_cost=0.11),
        Exposure("tie2", "B", day=2, minute=1, fallback_cost=0.13, convert_after=1),
        Exposure("sw1", "A", day=0, delivered=False, fallback_cost=0.2, country="MX"),
        Exposure("sw1", "B", day=3, fallback_cost=0.3, convert_after=10, country="US"),
        Exposure("sw1", "A", day=5, cost=0.07, country="BR"),
        Exposure("late", "B", day=2, convert_after=45),
        Exposure("late", "B", day=4, convert_after=2000),
        # exactly on period bounds (D0 09:00 + 900 min = D0+1 00:00; the "period" case starts there)
        Exposure("edge", "A", day=0, minute=900, convert_after=4),
        Exposure("edge", "B", day=2, cost=0.09),
        Exposure("edge2", "B", day=2, minute=30),
        Exposure("edge2", "A", day=3, minute=900),
        Exposure("o1", "X", day=1, experiment="exp2", convert_after=50, country="US"),
        Exposure("o2", "Y", day=2, experiment="exp2", fallback_cost=0.4),
        Exposure("o2", "X", day=3, experiment="exp2"),
    ]
    return exposures


def _campaigns_and_purposes(c) -> None:
    """Campaigns and another purpose: filters the table must apply like the view."""
    c.execute("UPDATE send_log SET campaign_id = CASE WHEN hash(event_id) % 2 = 0 THEN 'c1' ELSE 'c2' END "
              "WHERE experiment_id IS NOT NULL")
    c.execute("UPDATE send_log SET purpose = 'verification' WHERE user_id LIKE 'exp1_C_%'")
    warehouse.refresh_facts(c)


@pytest.fixture(scope="module")
def con():
    """Ties, switchers (across variants and countries), fallbacks, two experiments, two
    campaigns and a non-experiment purpose, over six days."""
    c = build(_exposures())
    _campaigns_and_purposes(c)
    return c


CASES: dict[str, dict[str, Any]] = {
    "all": {},
    "exp1": {"ids": ["exp1"]},
    "period": {"start": D0 + timedelta(days=1), "end": D0 + timedelta(days=3)},
    "one_day": {"ids": ["exp1"], "start": D0 + timedelta(days=3), "end": D0 + timedelta(days=3)},
    "countries": {"filters": Filters(countries=("BR", "MX"))},
    "purpose": {"filters": Filters(purposes=("password_reset",))},
    "campaign": {"filters": Filters(extra=(("campaign_id", "c1"),))},
    "region_and_period": {"start": D0 + timedelta(days=2), "end": D0 + timedelta(days=5),
                          "filters": Filters(extra=(("region", "Americas"),))},
    "variant_extra": {"ids": ["exp1"], "filters": Filters(extra=(("variant", "B"),))},
    "channel_template_ignored": {"filters": Filters(channels=("voice",), templates=("tmpl_A",),
                                                    countries=("US", "BR"))},
    "nothing": {"filters": Filters(countries=("JP",))},
}


def _call(con, case: str, segment: str, window: float | None, fn) -> pd.DataFrame:
    spec = CASES[case]
    return fn(con, spec.get("ids"), start=spec.get("start"), end=spec.get("end"), filters=spec.get("filters"),
              window_minutes=window, segment=segment)


def test_refresh_builds_an_up_to_date_table(con):
    assert ex.data._exposures_ready(con)
    n = con.execute("SELECT count(*) FROM _experiment_exposures").fetchone()[0]
    want = con.execute("SELECT count(*) FROM attempt_facts WHERE experiment_id IS NOT NULL AND variant IS NOT NULL "
                       "AND NOT is_fallback").fetchone()[0]
    assert n == want > 0


@pytest.mark.parametrize("segment", ["none", "country"])
@pytest.mark.parametrize("window", [None, 30.0, 2000.0])
@pytest.mark.parametrize("case", list(CASES))
def test_table_and_view_paths_equal_the_reference(con, monkeypatch, case, segment, window):
    want = _call(con, case, segment, window, _reference_aggregates)
    used: list[str] = []
    render = ex.data._sql.render

    singles: list[bool] = []

    def spy(name: str, **fragments: str) -> str:
        used.append(name)
        if "single" in fragments:
            singles.append(fragments["single"] != "false" and fragments["whole"] != "false")
        return render(name, **fragments)

    monkeypatch.setattr(ex.data._sql, "render", spy)
    fast = _call(con, case, segment, window, ex.data._aggregates)
    monkeypatch.setattr(ex.data, "USE_EXPOSURES_TABLE", False)
    slow = _call(con, case, segment, window, ex.data._aggregates)
    assert used == ["experiments_variant_metrics_exposures", "experiments_variant_metrics"]
    # a period (and the experiment) as the only filters: members wholly inside the period, and members
    # with one exposure in it, skip the GROUP BY
    assert singles == [case in ("all", "exp1", "period", "one_day")]
    if case != "nothing":
        assert len(want) > 0
    pd.testing.assert_frame_equal(fast, want, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(slow, want, check_exact=False, rtol=1e-12)


def test_page_functions_equal_on_both_paths(con, monkeypatch):
    kwargs: dict[str, Any] = {"start": D0, "end": D0 + timedelta(days=4), "filters": Filters(countries=("BR", "MX")),
                              "window_minutes": 30.0}
    fast = (ex.list_experiments(con, **kwargs), ex.variant_metrics(con, "exp1", **kwargs),
            ex.country_breakdown(con, "exp1", 2, **kwargs))
    monkeypatch.setattr(ex.data, "USE_EXPOSURES_TABLE", False)
    slow = (ex.list_experiments(con, **kwargs), ex.variant_metrics(con, "exp1", **kwargs),
            ex.country_breakdown(con, "exp1", 2, **kwargs))
    for a, b in zip(fast, slow, strict=True):
        assert len(a) > 0
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


def test_filters_the_table_does_not_keep_read_attempt_facts(con):
    assert ex.data._exposures_can_answer(con, Filters(countries=("BR",), extra=(("campaign_id", "c1"),)))
    assert not ex.data._exposures_can_answer(con, Filters(extra=(("encoding", "GSM-7"),)))
    got = ex.data._aggregates(con, ["exp1"], start=None, end=None, filters=Filters(extra=(("encoding", "GSM-7"),)),
                         window_minutes=None)
    want = _reference_aggregates(con, ["exp1"], filters=Filters(extra=(("encoding", "GSM-7"),)))
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


def test_missing_or_stale_table_falls_back_to_attempt_facts():
    c = build(arm("A", 10, 3) + arm("B", 10, 6))
    want = _reference_aggregates(c, ["exp1"])
    assert ex.data._exposures_ready(c)
    # a refresh by an older build: _attempt_facts rebuilt (its comment gone), the table left as it was
    c.execute("COMMENT ON TABLE _attempt_facts IS NULL")
    c.execute("UPDATE _experiment_exposures SET cost = cost + 1")  # stale content must not be read
    assert not ex.data._exposures_ready(c)
    pd.testing.assert_frame_equal(ex.data._aggregates(c, ["exp1"], start=None, end=None, filters=None,
                                                 window_minutes=None), want, check_exact=False, rtol=1e-12)
    c.execute("DROP TABLE _experiment_exposures")  # an older warehouse, or views over the Parquet export
    assert not ex.data._exposures_ready(c)
    pd.testing.assert_frame_equal(ex.data._aggregates(c, ["exp1"], start=None, end=None, filters=None,
                                                 window_minutes=None), want, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("use_table", [True, False])
@pytest.mark.parametrize("case", ["all", "period", "countries", "campaign"])
def test_one_pass_page_data_equals_the_three_calls(con, monkeypatch, use_table, case):
    """experiment_data + list_from / analyse_from / country_breakdown_from (the Experiments page's one
    query) give the frames list_experiments / analyse_experiment / country_breakdown give."""
    monkeypatch.setattr(ex.data, "USE_EXPOSURES_TABLE", use_table)
    spec = CASES[case]
    period = {"start": spec.get("start"), "end": spec.get("end"), "filters": spec.get("filters"),
              "window_minutes": 30.0}
    stats = {"sequential": True, "alpha": 0.1, "mde_relative": 0.2}
    data = ex.experiment_data(con, **period)
    listed = ex.list_from(data, **stats)
    pd.testing.assert_frame_equal(listed, ex.list_experiments(con, **period, **stats))
    assert set(listed["experiment_id"]) == {"exp1", "exp2"}
    for experiment in ("exp1", "exp2"):
        got = ex.analyse_from(data, experiment, **stats)
        want = ex.analyse_experiment(con, experiment, **period, **stats)
        pd.testing.assert_frame_equal(got.variants, want.variants, check_exact=False, rtol=1e-12)
        pd.testing.assert_frame_equal(got.metrics, want.metrics, check_exact=False, rtol=1e-9)
        assert (got.verdict, got.control, got.srm, got.power) == (want.verdict, want.control, want.srm, want.power)
        for top_n in (1, 5):
            pd.testing.assert_frame_equal(
                ex.country_breakdown_from(data, experiment, top_n, alpha=0.1, sequential=True),
                ex.country_breakdown(con, experiment, top_n, **period, alpha=0.1, sequential=True),
                check_exact=False, rtol=1e-12)
    assert ex.analyse_from(data, "nope").variants.empty
    assert ex.country_breakdown_from(data, "nope").empty


def test_one_pass_page_data_on_an_empty_period(con):
    data = ex.experiment_data(con, start=D0 - timedelta(days=30), end=D0 - timedelta(days=20))
    assert data.aggregates.empty and data.last_data_day is None
    assert list(ex.list_from(data).columns) == ex.EXPERIMENT_COLUMNS and ex.list_from(data).empty


# --------------------------------------------------------------------------- #
# The CUPED covariate and opt-outs (issue 19): read off the first exposure's pre_conversions_28d
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def pre_con():
    """The exposures above, plus conversions around the members' exposures (28 days before and more,
    exactly 28 days before a first exposure, between two exposures of one member), and replies: opt-outs
    before and after first exposures, and a HELP."""
    b = Builder()
    for e in _exposures():
        b.add(e)
    users = sorted({e.user for e in _exposures()})
    offsets = [timedelta(days=-1), timedelta(days=-20), timedelta(days=-28), timedelta(days=-29),
               timedelta(days=2, hours=5), timedelta(days=-27, hours=-23), timedelta(days=-40)]
    for i, user in enumerate(users):
        for k in range(i % 4):
            b.conversions.append({"event_id": b._id("CV"), "user_id": user, "conversion_type": "login",
                                  "occurred_at": at(i % 6) + offsets[(i + k) % len(offsets)]})
    # exactly 28 days before a member's only (first) exposure: inside the half-open pre-period
    first = next(e for e in _exposures() if e.user == "exp1_A_7")
    b.conversions.append({"event_id": b._id("CV"), "user_id": "exp1_A_7", "conversion_type": "login",
                          "occurred_at": at(first.day, first.minute) - timedelta(days=28)})
    c = b.build()
    _campaigns_and_purposes(c)
    replies = pd.DataFrame([
        {"experiment_id": x, "variant": v, "user_id": u, "classification": cls, "received_at": at(day)}
        for x, v, u, cls, day in [("exp1", "A", "exp1_A_1", "opt_out", 5), ("exp1", "B", "exp1_B_2", "opt_out", 5),
                                  ("exp1", "B", "exp1_B_3", "opt_out", -3), ("exp1", "A", "sw1", "opt_out", 4),
                                  ("exp1", "A", "exp1_A_4", "help", 5), ("exp2", "X", "o1", "opt_out", 4)]])
    c.register("_rows", replies)
    c.execute("INSERT INTO _response_facts (experiment_id, variant, user_id, classification, received_at) "
              "SELECT experiment_id, variant, user_id, classification, CAST(received_at AS TIMESTAMPTZ) FROM _rows")
    c.unregister("_rows")
    return c


def _preperiod(c, case: str, experiment: str, window: float | None, pre_days: int) -> ex.PrePeriodData:
    spec = CASES[case]
    return ex.preperiod_data(c, experiment, start=spec.get("start"), end=spec.get("end"), filters=spec.get("filters"),
                             window_minutes=window, pre_days=pre_days)


@pytest.mark.parametrize("pre_days", [28, 3])
@pytest.mark.parametrize("window", [None, 30.0, 2000.0])
@pytest.mark.parametrize("case", list(CASES))
def test_preperiod_from_the_table_equals_the_attempt_facts_query(pre_con, monkeypatch, case, window, pre_days):
    used: list[str] = []
    render = ex.data._sql.render
    monkeypatch.setattr(ex.data._sql, "render", lambda name, **f: used.append(name) or render(name, **f))
    for experiment in ("exp1", "exp2"):
        fast = _preperiod(pre_con, case, experiment, window, pre_days)
        monkeypatch.setattr(ex.data, "USE_EXPOSURES_TABLE", False)
        slow = _preperiod(pre_con, case, experiment, window, pre_days)
        monkeypatch.setattr(ex.data, "USE_EXPOSURES_TABLE", True)
        pd.testing.assert_frame_equal(fast.rows, slow.rows)
        assert (fast.covariate, fast.pre_days, fast.has_responses) == (slow.covariate, slow.pre_days, True)
    # the table carries the 28-day count only: another pre-period counts at query time
    table = "experiments_preperiod_exposures" if pre_days == 28 else "experiments_preperiod"
    assert used == [table, "experiments_preperiod"] * 2


def test_the_covariate_data_is_not_trivial(pre_con):
    """The comparison above means something: pre-period conversions and opt-outs in every arm."""
    pre = ex.preperiod_data(pre_con, "exp1", window_minutes=30.0)
    by_variant = pre.rows.groupby("variant")[["users", "x_sum", "xy_sum", "pre_users", "opt_out_users"]].sum()
    assert (by_variant[["x_sum", "pre_users"]] > 0).all().all()
    assert by_variant["xy_sum"].sum() > 0
    # exp1_A_1 and sw1 opted out after their first exposure; exp1_B_2 too; exp1_B_3 before it: not counted
    assert by_variant["opt_out_users"].to_dict() == {"A": 2, "B": 1, "C": 0}
    # a conversion exactly 28 days before the first exposure counts (the pre-period is [first - 28 d, first))
    x = pre_con.execute("SELECT pre_conversions_28d FROM _experiment_exposures WHERE user_id = 'exp1_A_7'").fetchall()
    assert x[0][0] >= 1


def test_cuped_readout_equal_on_both_paths(pre_con, monkeypatch):
    spec = {"start": D0 + timedelta(days=1), "end": D0 + timedelta(days=5), "window_minutes": 30.0}
    page = ex.experiment_data(pre_con, **spec)
    fast = ex.experiment_readout(ex.analyse_from(page, "exp1"), page, ex.preperiod_data(pre_con, "exp1", **spec))
    monkeypatch.setattr(ex.data, "USE_EXPOSURES_TABLE", False)
    slow = ex.experiment_readout(ex.analyse_from(page, "exp1"), page, ex.preperiod_data(pre_con, "exp1", **spec))
    assert fast.cuped and fast.cuped == slow.cuped
    assert fast.decision == slow.decision and fast.guardrails == slow.guardrails


def test_a_table_without_the_column_counts_at_query_time(pre_con, monkeypatch):
    want = ex.preperiod_data(pre_con, "exp1", window_minutes=30.0)
    monkeypatch.setattr(ex.data, "_PRE_COLUMNS", {"conversions": "pre_conversions_{days}d_not_built"})
    used: list[str] = []
    render = ex.data._sql.render
    monkeypatch.setattr(ex.data._sql, "render", lambda name, **f: used.append(name) or render(name, **f))
    got = ex.preperiod_data(pre_con, "exp1", window_minutes=30.0)
    assert used == ["experiments_preperiod"]
    pd.testing.assert_frame_equal(got.rows, want.rows)


@pytest.mark.parametrize("window", [None, 30.0])
@pytest.mark.parametrize("case", list(CASES))
def test_page_pre_period_equals_preperiod_data(pre_con, monkeypatch, case, window):
    """The page's path (CUPED sums with experiment_data, opt_out_data, preperiod_from) gives preperiod_data's
    rows, and experiment_data's aggregates do not change with the sums beside them."""
    spec = CASES[case]
    period = {"start": spec.get("start"), "end": spec.get("end"), "filters": spec.get("filters")}
    page = ex.experiment_data(pre_con, **period, window_minutes=window)
    assert page.pre_days == 28 and page.cuped is not None
    pd.testing.assert_frame_equal(page.aggregates,
                                  ex.experiment_data(pre_con, **period, window_minutes=window, pre_days=None).aggregates)
    for experiment in ("exp1", "exp2", "nope"):
        got = ex.preperiod_from(page, experiment, ex.opt_out_data(pre_con, experiment, **period))
        want = ex.preperiod_data(pre_con, experiment, **period, window_minutes=window)
        # an empty answer: DuckDB's empty text columns are objects, a filtered frame keeps its str dtype
        pd.testing.assert_frame_equal(got.rows, want.rows, check_dtype=not want.rows.empty)
        assert want.rows.empty == (experiment == "nope" or case == "nothing") or experiment == "exp2"
        assert (got.covariate, got.pre_days, got.has_responses) == ("conversions", 28, True)
        opted = got.rows.loc[got.rows["opt_out_users"] > 0, ["variant", "segment", "opt_out_users"]]
        monkeypatch.setattr(ex.data, "USE_EXPOSURES_TABLE", False)  # opt-outs from the attempt_facts query
        pd.testing.assert_frame_equal(ex.opt_out_data(pre_con, experiment, **period).rows, opted.reset_index(drop=True))
        monkeypatch.setattr(ex.data, "USE_EXPOSURES_TABLE", True)


def test_without_the_covariate_the_page_counts_at_query_time(pre_con, monkeypatch):
    page = ex.experiment_data(pre_con, window_minutes=30.0, pre_days=3)  # the table carries 28 days only
    assert page.cuped is None and page.pre_days is None
    assert ex.preperiod_from(page, "exp1", ex.opt_out_data(pre_con, "exp1")) is None
    monkeypatch.setattr(ex.data, "USE_EXPOSURES_TABLE", False)  # a Parquet export or an older warehouse
    assert ex.experiment_data(pre_con, window_minutes=30.0).cuped is None


def test_without_replies_opt_outs_are_not_measured():
    c = build(arm("A", 20, 5) + arm("B", 20, 9))
    c.execute("DROP VIEW IF EXISTS responses")
    c.execute("DROP TABLE _response_facts CASCADE")  # a warehouse built before replies were ingested
    opt_outs = ex.opt_out_data(c, "exp1")
    assert not opt_outs.has_responses and opt_outs.rows.empty
    got = ex.preperiod_from(ex.experiment_data(c, window_minutes=30.0), "exp1", opt_outs)
    want = ex.preperiod_data(c, "exp1", window_minutes=30.0)
    pd.testing.assert_frame_equal(got.rows, want.rows)
    assert not got.has_responses and not want.has_responses
