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
from tests.test_experiments_data import D0, Exposure, _no_plan_files, _reference_aggregates, arm, build  # noqa: F401


@pytest.fixture(scope="module")
def con():
    """Ties, switchers (across variants and countries), fallbacks, two experiments, two
    campaigns and a non-experiment purpose, over six days."""
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
    c = build(exposures)
    # campaigns and another purpose: filters the table must apply like the view
    c.execute("UPDATE send_log SET campaign_id = CASE WHEN hash(event_id) % 2 = 0 THEN 'c1' ELSE 'c2' END "
              "WHERE experiment_id IS NOT NULL")
    c.execute("UPDATE send_log SET purpose = 'verification' WHERE user_id LIKE 'exp1_C_%'")
    warehouse.refresh_facts(c)
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
