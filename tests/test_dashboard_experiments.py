"""The Experiments page through Streamlit's AppTest (dashboard/app.py + navigation, as a user opens it).

Checks: no exception; the verdict shown is analytics' verdict; the sequential toggle
widens the plotted interval; SRM and ship cases read in words; downloads are offered;
an empty warehouse and a warehouse without experiments say what to run.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from switchboard.analytics import experiments as ex
from switchboard.ingest import warehouse
from tests.browser_util import build_empty_warehouse
from tests.test_experiments_data import D0, Builder, Exposure, arm

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGE = "app_pages/experiments.py"


def open_experiments(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Experiments"
    return at


def alerts(at: AppTest) -> list[str]:
    return [a.value for kind in ("success", "info", "warning", "error") for a in getattr(at, kind)]


def interval_widths(at: AppTest) -> list[float]:
    charts = at.get("plotly_chart")
    assert charts, "no interval plot"
    trace = json.loads(charts[0].proto.spec)["data"][0]
    err = trace["error_x"]

    def values(v):  # plotly serialises numpy arrays as base64 typed arrays
        if isinstance(v, list):
            return v
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()

    return [hi + lo for hi, lo in zip(values(err["array"]), values(err["arrayminus"]))]


@pytest.fixture(scope="module")
def hand_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse with a clear winner ("exp_ship", balanced) and a skewed split ("exp_srm")."""
    d = tmp_path_factory.mktemp("exp_hand")
    b = Builder()
    for e in (arm("A", 400, 100, experiment="exp_ship") + arm("B", 400, 160, experiment="exp_ship")
              + arm("A", 400, 100, experiment="exp_srm") + arm("B", 250, 80, experiment="exp_srm")):
        b.add(e)
    con = b.build(str(d / "warehouse.duckdb"))
    con.execute("CHECKPOINT")
    con.close()
    return d


def test_page_shows_analytics_verdict(hand_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_experiments(hand_dir, monkeypatch)
    assert set(at.selectbox(key="experiment").options) == {"exp_ship", "exp_srm"}
    at.selectbox(key="experiment").set_value("exp_ship").run()
    con = warehouse.connect(hand_dir / "warehouse.duckdb", read_only=True)
    try:
        period = {"start": D0, "end": D0 + timedelta(days=6)}
        page_data = ex.experiment_data(con, **period, window_minutes=30.0)
        analysis = ex.analyse_from(page_data, "exp_ship", alpha=0.05, mde_relative=ex.DEFAULT_MDE)
        pre = ex.preperiod_data(con, "exp_ship", **period, window_minutes=30.0)
        expected = ex.experiment_readout(analysis, page_data, pre).decision
    finally:
        con.close()
    card = alerts(at)[0]  # the decision card comes first
    assert card.startswith(f"**{expected.outcome}** · {expected.reason}")
    assert expected.reason.startswith("Ship B: conversion is better, +60.0% (95% CI")
    assert "Days still to run: **0**" in card
    captions = " ".join(c.value for c in at.caption)
    assert "percentage points" in captions and "exploratory" in captions.lower()
    assert "assuming an equal split" in captions
    assert any("chance to win" in e.label.lower() for e in at.expander)
    assert len(at.get("download_button")) == 2
    assert len(at.dataframe) >= 4  # list, metric tables, guardrails, countries


def test_sequential_toggle_widens_the_interval(hand_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_experiments(hand_dir, monkeypatch)
    at.selectbox(key="experiment").set_value("exp_ship").run()
    fixed = interval_widths(at)
    at.toggle(key="exp_sequential").set_value(True).run()
    assert not at.exception
    sequential = interval_widths(at)
    assert len(fixed) == len(sequential) > 0
    assert all(s > f for s, f in zip(sequential, fixed))
    assert any("sequential (always valid)" in c.value for c in at.caption)


def test_ship_and_srm_read_in_words(hand_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_experiments(hand_dir, monkeypatch)
    at.selectbox(key="experiment").set_value("exp_ship").run()
    assert at.success and not at.error
    at.selectbox(key="experiment").set_value("exp_srm").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("Sample ratio mismatch" in e and "blocks shipping" in e for e in errors)
    assert not at.success  # never "ship" while the split is broken


def test_window_input_changes_conversions(hand_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_experiments(hand_dir, monkeypatch)
    at.selectbox(key="experiment").set_value("exp_ship").run()
    assert at.success  # conversions 5 minutes after the send count in the default 30-minute window
    at.number_input(key="exp_window").set_value(1).run()
    assert not at.exception and not at.success  # with a 1-minute window nobody converts
    assert any(a.startswith("**Don't ship yet**") for a in alerts(at)), alerts(at)


def test_empty_warehouse_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_empty_warehouse(tmp_path / "warehouse.duckdb")
    at = open_experiments(tmp_path, monkeypatch)
    assert any("switchboard ingest" in a or "make demo" in a for a in alerts(at))


def test_no_experiments_says_where_they_come_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b = Builder()
    b.add(Exposure("u1", "A", experiment=None))  # a send outside any experiment
    con = b.build(str(tmp_path / "warehouse.duckdb"))
    con.execute("UPDATE send_log SET variant = NULL")
    warehouse.refresh_facts(con)
    con.execute("CHECKPOINT")
    con.close()
    at = open_experiments(tmp_path, monkeypatch)
    assert any("No experiments" in a and "experiment_id" in a for a in alerts(at)), alerts(at)
    assert D0  # the hand warehouse's first day is inside the default range



def test_page_groups_the_exposures_once(hand_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One analytics query per period, filters and window (experiment_data): the list, the analysis and the
    countries are derived from it, so switching experiment or the sequential toggle queries nothing new."""
    from switchboard.dashboard import data

    data.forget_connections()
    queried: list[str] = []
    run = data.run

    def counting(fn, *args, **kwargs):
        name = fn if isinstance(fn, str) else f"{fn.__module__}.{fn.__qualname__}"
        if name.startswith("switchboard.analytics."):
            queried.append(name)
        return run(fn, *args, **kwargs)

    monkeypatch.setattr(data, "run", counting)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(hand_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()  # the default page (Overview) first, as a visitor arrives
    queried.clear()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    one_query = f"{ex.experiment_data.__module__}.experiment_data"  # analytics.experiments.data since the split
    # the CUPED sums come with experiment_data (the warehouse carries the 28-day covariate): only the chosen
    # experiment's opt-outs are looked up
    pre_query = f"{ex.opt_out_data.__module__}.opt_out_data"
    assert queried == [one_query, pre_query]
    queried.clear()
    at.toggle(key="exp_sequential").set_value(True).run()
    at.toggle(key="exp_cuped").set_value(False).run()
    assert not at.exception
    assert set(queried) <= {one_query, pre_query}  # cached: the toggles query nothing new
    at.selectbox(key="experiment").set_value("exp_srm").run()
    assert not at.exception
    assert set(queried) == {one_query, pre_query}
    country = at.dataframe[-1].value
    con = warehouse.connect(hand_dir / "warehouse.duckdb", read_only=True)
    try:
        want = ex.country_breakdown(con, "exp_srm", 5, start=D0, end=D0 + timedelta(days=6), window_minutes=30.0,
                                    alpha=0.05, sequential=True)
    finally:
        con.close()
    assert list(country["Members"]) == [f"{u:,}" for u in want["users"]]


def test_another_pre_period_counts_at_query_time(hand_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pre-period the warehouse does not carry (setting experiment_pre_days): preperiod_data counts it."""
    from switchboard.dashboard import data

    data.forget_connections()
    queried: list[str] = []
    run = data.run

    def counting(fn, *args, **kwargs):
        queried.append(fn if isinstance(fn, str) else f"{fn.__module__}.{fn.__qualname__}")
        return run(fn, *args, **kwargs)

    monkeypatch.setattr(data, "run", counting)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(hand_dir))
    monkeypatch.setenv("SWITCHBOARD_EXPERIMENT_PRE_DAYS", "14")
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    module = ex.preperiod_data.__module__
    assert [q for q in queried if q.startswith(module)] == [f"{module}.experiment_data", f"{module}.preperiod_data"]
    assert "14 days" in " ".join(t.help or "" for t in at.toggle)


# --------------------------------------------------------------------------- #
# Issue 19: decision card, Bayesian readout, CUPED, differs by country
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def v2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("exp_v2")
    build_v2_warehouse(d / "warehouse.duckdb")
    return d


def build_v2_warehouse(path: Path) -> None:
    """exp_ship (B wins, with a pre-period for CUPED) and exp_flip (B doubles conversion in BR, halves it in IN)."""
    b = Builder()
    ship = arm("A", 400, 100, experiment="exp_ship") + arm("B", 400, 160, experiment="exp_ship")
    flip = [e for v, br, india in (("A", 100, 200), ("B", 200, 100)) for e in
            arm(v, 400, br, experiment="exp_flip", country="BR", prefix=f"flip_{v}_br_")
            + arm(v, 400, india, experiment="exp_flip", country="IN", prefix=f"flip_{v}_in_")]
    for e in ship + flip:
        b.add(e)
    # The pre-period is balanced, as randomisation makes it: members 0-99 of each arm converted 3 days before
    # their first exposure (in A exactly the converters, in B 100 of its 160), so it predicts the test.
    for e in ship:
        if int(e.user.rsplit("_", 1)[1]) < 100:
            b.conversions.append({"event_id": b._id("CV"), "user_id": e.user, "conversion_type": "login",
                                  "occurred_at": at_(e) - timedelta(days=3)})
    con = b.build(str(path))
    con.execute("CHECKPOINT")
    con.close()


def at_(e: Exposure):
    from tests.test_experiments_data import at

    return at(e.day, e.minute)


def frame_with(at: AppTest, column: str):
    """The first table on the page that has ``column`` (AppTest finds dataframes by position only)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def chart_types(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["data"][0].get("type", "") for c in at.get("plotly_chart")]


def test_decision_card_first_with_cuped_and_bayesian(v2_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_experiments(v2_dir, monkeypatch)
    at.selectbox(key="experiment").set_value("exp_ship").run()
    assert alerts(at)[0].startswith("**Ship** · Ship B: conversion is better")
    assert any("How the decision is made" in e.label for e in at.expander)
    cuped = frame_with(at, "Variance reduction")
    reduction = float(cuped.loc[0, "Variance reduction"].rstrip("%"))
    assert reduction > 5  # converters' pre-period conversions predict the test
    assert any("CUPED is on" in c.value for c in at.caption)
    assert not any(m.label.startswith("Chance B beats") for m in at.metric)  # frequentist by default
    at.segmented_control(key="exp_method").set_value("Bayesian").run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "Chance B beats A" in labels and "Risk of shipping B" in labels and "Risk of keeping A" in labels
    assert any("risk" in e.label.lower() for e in at.expander)
    assert alerts(at)[0].startswith("**Ship**")  # the credible interval agrees
    at.toggle(key="exp_cuped").set_value(False).run()
    assert any("you turned it off" in c.value for c in at.caption)


def test_differs_by_country_warns_and_maps(v2_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_experiments(v2_dir, monkeypatch)
    at.selectbox(key="experiment").set_value("exp_flip").run()
    warnings = [w.value for w in at.warning]
    assert any("differs by country: it helps in some and hurts in others" in w for w in warnings), warnings
    assert "choropleth" in chart_types(at)
    lifts = frame_with(at, "p_value_adjusted")
    assert dict(zip(lifts["country_name"], lifts["direction"])) == {"Brazil": "better", "India": "worse"}
    captions = " ".join(c.value for c in at.caption)
    assert "Holm (family-wise error) across the 2 countries" in captions
    at.segmented_control(key="exp_correction").set_value("Benjamini-Hochberg").run()
    assert not at.exception
    assert "Benjamini-Hochberg (false discovery rate) across the 2 countries" in " ".join(c.value for c in at.caption)
    # Overall no change (the regions cancel): not a Ship; power from history is filled in.
    assert not alerts(at)[0].startswith("**Ship**")
    labels = [m.label for m in at.metric]
    assert {"Baseline conversion", "Variance per member", "Members per arm per day"} <= set(labels)
