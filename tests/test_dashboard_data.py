"""The dashboard's data layer: read-only snapshot, new snapshots picked up, no lock errors shown."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from switchboard.analytics import delivery
from switchboard.dashboard import data
from switchboard.ingest import warehouse
from tests.browser_util import REPO, build_demo_warehouse, build_empty_warehouse

APP = str(REPO / "dashboard" / "app.py")


def test_missing_snapshot_names_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    with pytest.raises(data.WarehouseUnavailable, match="switchboard ingest.*make demo"):
        data.current_snapshot()


def test_snapshot_is_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_empty_warehouse(tmp_path / "warehouse.duckdb")
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    cur = data.cursor()
    with pytest.raises(Exception, match="(?i)read.only"):
        cur.execute("CREATE TABLE x AS SELECT 1")


def test_new_snapshot_is_picked_up_and_cache_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    build_empty_warehouse(tmp_path / "warehouse.duckdb")
    before = data.current_snapshot()
    assert data.data_bounds().empty
    held = data.cursor()  # a session mid-query on the old snapshot keeps working
    build_demo_warehouse(tmp_path / "ingest.duckdb", days=7)
    warehouse.publish_snapshot(tmp_path / "ingest.duckdb", tmp_path / "warehouse.duckdb")
    after = data.current_snapshot()
    assert after != before
    bounds = data.data_bounds()
    assert not bounds.empty and bounds.messages > 0
    assert held.execute("SELECT count(*) FROM message_facts").fetchone()[0] == 0
    row = data.run(delivery.summary, start=bounds.first_day, end=bounds.last_day)
    assert int(row["sent"].iloc[0]) == bounds.messages


def _hold_write_lock(path: Path) -> subprocess.Popen[str]:
    code = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_writer_holding_the_file_gives_a_friendly_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = build_empty_warehouse(tmp_path / "warehouse.duckdb")
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    proc = _hold_write_lock(path)
    try:
        with pytest.raises(data.WarehouseUnavailable, match="cannot be opened right now"):
            data.cursor()
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        assert not at.exception
        text = " ".join(w.value for w in at.warning)
        assert "cannot be opened right now" in text and "lock" not in text.lower()
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.1)
    assert data.data_bounds().empty  # once the writer is gone, it opens


def test_recent_views_are_warmed_on_a_new_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import date, timedelta

    import switchboard.analytics.delivery as delivery
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    end = date(2026, 11, 20)
    build_demo_warehouse(tmp_path / "warehouse.duckdb", days=10, end=end)
    assert data.data_bounds().last_day == end
    fixed = {"start": date(2026, 11, 12), "end": date(2026, 11, 14)}  # a link with explicit dates
    rolling = {"start": end - timedelta(days=6), "end": end}  # the default view: ends on the last day
    data.run("switchboard.analytics.delivery.summary", **fixed)
    data.run("switchboard.analytics.delivery.summary", **rolling)

    # Ingest publishes one more day.
    build_demo_warehouse(tmp_path / "next.duckdb", days=11, end=end + timedelta(days=1))
    warehouse.publish_snapshot(tmp_path / "next.duckdb", tmp_path / "warehouse.duckdb")
    assert data.data_bounds().last_day == end + timedelta(days=1)  # sees the new snapshot, starts warming
    data.wait_for_prewarm()

    def not_cached(*args, **kwargs):
        raise AssertionError("this view should have been warmed")

    monkeypatch.setattr(delivery, "summary", not_cached)
    data.run("switchboard.analytics.delivery.summary", **fixed)
    data.run("switchboard.analytics.delivery.summary", start=rolling["start"] + timedelta(days=1),
             end=rolling["end"] + timedelta(days=1))
    with pytest.raises(AssertionError, match="warmed"):  # and only those
        data.run("switchboard.analytics.delivery.summary", start=date(2026, 11, 13), end=date(2026, 11, 13))


def test_filter_options_equal_the_distinct_values(tmp_path: Path) -> None:
    """The sidebar's choices (one DISTINCT per column) are every non-null value of attempt_facts, sorted,
    campaigns included (the demo warehouse has none: a test campaign is added to the send log)."""
    path = tmp_path / "warehouse.duckdb"
    build_demo_warehouse(path, days=7)
    con = warehouse.connect(path)
    con.execute("UPDATE send_log SET campaign_id = CASE WHEN hash(event_id) % 3 = 0 THEN 'camp-b' "
                "WHEN hash(event_id) % 3 = 1 THEN 'camp-a' END")
    warehouse.refresh_facts(con)
    got = data._filter_options(con)
    for key, column in {"channels": "channel", "purposes": "purpose", "templates": "template_id",
                        "campaigns": "campaign_id"}.items():
        want = [r[0] for r in con.execute(
            f"SELECT DISTINCT {column} FROM attempt_facts WHERE {column} IS NOT NULL ORDER BY 1").fetchall()]
        assert got[key] == want and len(want) >= 2, key
    assert got["campaigns"] == ["camp-a", "camp-b"]
    names = dict(zip(got["countries"]["iso2"], got["countries"]["name"], strict=True))
    assert names["ID"] == "Indonesia" and list(got["countries"]["name"]) == sorted(names.values())
    con.close()


# Any DATE DuckDB holds: the plausible window's edges, far past and future, infinities, NULL.
DAYS = st.one_of(
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(str),
    st.sampled_from(["1999-12-31", "2000-01-01", "20261-11-15", "0044-03-15 (BC)", "infinity", "-infinity",
                     "294247-01-01"]),
    st.none(),
)


@settings(max_examples=60, deadline=None)
@given(messages=st.lists(DAYS, max_size=6), calls=st.lists(DAYS, max_size=4), attempts=st.lists(DAYS, max_size=4))
def test_bounds_hold_only_plausible_days(messages: list[str | None], calls: list[str | None],
                                         attempts: list[str | None]) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for view, column, values in (("message_facts", "sent_day", messages), ("call_facts", "start_day", calls),
                                 ("attempt_facts", "sent_day", attempts)):
        con.execute(f"CREATE TABLE {view} ({column} DATE)")
        for value in values:
            con.execute(f"INSERT INTO {view} VALUES (?::DATE)", [value])
    bounds = data._bounds(con)
    today = con.execute("SELECT current_date").fetchall()[0][0]
    window = (data.PLAUSIBLE_FIRST, today + timedelta(days=1))
    assert bounds.window_last == window[1]

    def plausible(values: list[str | None]) -> list[date]:
        days = [con.execute("SELECT ?::DATE BETWEEN ? AND ?", [v, *window]).fetchall()[0][0] for v in values]
        return [date.fromisoformat(v) for v, ok in zip(values, days) if ok]

    inside = plausible(messages) + plausible(calls) + plausible(attempts)
    assert (bounds.first_day, bounds.last_day) == ((min(inside), max(inside)) if inside else (None, None))
    assert (bounds.messages, bounds.calls, bounds.attempts) == (len(messages), len(calls), len(attempts))
    dated = [v for v in messages if v is not None], [v for v in calls if v is not None], [v for v in attempts if v is not None]
    assert (bounds.outside_messages, bounds.outside_calls, bounds.outside_attempts) == (
        len(dated[0]) - len(plausible(messages)), len(dated[1]) - len(plausible(calls)),
        len(dated[2]) - len(plausible(attempts)))
